/*
 * qn_err.h: the one table of error codes of Quasineuron.
 *
 * Every function that can fail returns 0 or a negative code from this table;
 * results travel in out-parameters. Statuses of GSL, SQLite, libmicrohttpd and
 * jansson are mapped to these codes at the boundary where they are called, so
 * callers only ever see one shape of error. The table also gives each code a
 * short name (used as the JSON error "code" and the sweep row status) and a
 * human message.
 */
#ifndef QN_ERR_H
#define QN_ERR_H

#define QN_ERR_MAP(X)                                                          \
    X(QN_OK, 0, "ok", "success")                                               \
    X(QN_ENOMEM, -1, "out_of_memory", "out of memory")                         \
    X(QN_EINVAL, -2, "invalid", "invalid argument")                            \
    X(QN_ESPEC, -3, "invalid_spec", "invalid specification")                   \
    X(QN_EPARSE, -4, "parse_error", "expression does not parse")               \
    X(QN_ERANGE, -5, "out_of_range", "value out of range")                     \
    X(QN_ENOTCONV, -6, "not_converged", "steady state not reached")            \
    X(QN_EDIVERGED, -7, "diverged", "solution diverged (non-finite state)")    \
    X(QN_ESOLVER, -8, "solver_failed", "ODE solver failed")                    \
    X(QN_ESINGULAR, -9, "singular", "singular Jacobian")                       \
    X(QN_ECANCELED, -10, "canceled", "canceled")                               \
    X(QN_EIO, -11, "io_error", "input/output error")                           \
    X(QN_EDB, -12, "database_error", "database error")                         \
    X(QN_ENOTFOUND, -13, "not_found", "not found")                             \
    X(QN_EEXIST, -14, "exists", "already exists")                              \
    X(QN_EVERSION, -15, "version", "database is newer than this program")      \
    X(QN_EFORMAT, -16, "bad_format", "malformed file")                         \
    X(QN_ENOTDIFF, -17, "not_differentiable", "readout is not differentiable") \
    X(QN_EBUSY, -18, "busy", "resource busy")                                  \
    X(QN_EFULL, -19, "disk_full", "disk full")                                 \
    X(QN_EAUTH, -20, "unauthorized", "unauthorized")                           \
    X(QN_EFORBID, -21, "forbidden", "forbidden")                               \
    X(QN_ERATE, -22, "invalid_rate", "a reaction rate is negative")

enum qn_err {
#define QN_ERR_ENUM(sym, val, name, msg) sym = val,
    QN_ERR_MAP(QN_ERR_ENUM)
#undef QN_ERR_ENUM
};

#define QN_ERR_COUNT 23

/* The short name of a code ("not_converged"); "unknown" for codes not in the table. */
const char *qn_err_name(int err);

/* The human message of a code; "unknown error" for codes not in the table. */
const char *qn_err_msg(int err);

#endif
