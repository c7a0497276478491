/*
 * qn_err.h: the one table of error codes of Quasineuron.
 *
 * Every function that can fail returns 0 or a negative code from this table;
 * results travel in out-parameters. Statuses of GSL, SQLite, libmicrohttpd and
 * jansson are mapped to these codes at the boundary where they are called, so
 * callers only ever see one shape of error. Each row gives a code:
 *   - a short name ("not_converged"), the sweep row status and the word logs use;
 *   - the HTTP status the daemon answers it with;
 *   - its wire name: the "code" of the JSON error body {"error": {"code",
 *     "message", "path"}}. It is the short name but for a few codes whose
 *     wire name clients knew before the code had a row of its own (a 503
 *     "database_error" when the database cannot be opened, the 409 "busy" of
 *     a cancel, the 500 "invalid_spec" of a stored device that no longer parses);
 *   - a human message.
 * Codes QN_EMODEL to QN_ESTORED are about requests and stored things rather
 * than computations: the transport (HTTP) answers most of them. A value, once
 * released, never changes (a sweep row stores its status as the code), so
 * rows are only ever added at the end; QN_ERATE, a computation code, came
 * after them, and QN_ELIMIT and QN_ETIMEOUT (bounds of one request's work)
 * after it. QN_EREMOTE came with jobs on several ranks (a job that cannot
 * run there: its type, no launcher; a launch that failed), and QN_ELOST with
 * Slurm (a batch job lost with its node: the job runs again).
 */
#ifndef QN_ERR_H
#define QN_ERR_H

/* X(symbol, value, name, HTTP status, wire name, message) */
#define QN_ERR_MAP(X)                                                                              \
    X(QN_OK, 0, "ok", 200, "ok", "success")                                                        \
    X(QN_ENOMEM, -1, "out_of_memory", 503, "out_of_memory", "out of memory")                       \
    X(QN_EINVAL, -2, "invalid", 400, "invalid", "invalid argument")                                \
    X(QN_ESPEC, -3, "invalid_spec", 400, "invalid_spec", "invalid specification")                  \
    X(QN_EPARSE, -4, "parse_error", 400, "parse_error", "expression does not parse")               \
    X(QN_ERANGE, -5, "out_of_range", 400, "out_of_range", "value out of range")                    \
    X(QN_ENOTCONV, -6, "not_converged", 500, "not_converged", "steady state not reached")          \
    X(QN_EDIVERGED, -7, "diverged", 500, "diverged", "solution diverged (non-finite state)")       \
    X(QN_ESOLVER, -8, "solver_failed", 500, "solver_failed", "ODE solver failed")                  \
    X(QN_ESINGULAR, -9, "singular", 500, "singular", "singular Jacobian")                          \
    X(QN_ECANCELED, -10, "canceled", 500, "canceled", "canceled")                                  \
    X(QN_EIO, -11, "io_error", 500, "io_error", "input/output error")                              \
    X(QN_EDB, -12, "database_error", 500, "database_error", "database error")                      \
    X(QN_ENOTFOUND, -13, "not_found", 404, "not_found", "not found")                               \
    X(QN_EEXIST, -14, "exists", 409, "exists", "already exists")                                   \
    X(QN_EVERSION, -15, "version", 500, "version", "database is newer than this program")          \
    X(QN_EFORMAT, -16, "bad_format", 400, "bad_format", "malformed file")                          \
    X(QN_ENOTDIFF, -17, "not_differentiable", 500, "not_differentiable",                           \
      "readout is not differentiable")                                                             \
    X(QN_EBUSY, -18, "busy", 503, "busy", "resource busy")                                         \
    X(QN_EFULL, -19, "disk_full", 507, "disk_full", "disk full")                                   \
    X(QN_EAUTH, -20, "unauthorized", 401, "unauthorized", "unauthorized")                          \
    X(QN_EFORBID, -21, "forbidden", 403, "forbidden", "forbidden")                                 \
    X(QN_EMODEL, -22, "model_unusable", 409, "model_unusable",                                     \
      "the stored model cannot be rebuilt into a network")                                         \
    X(QN_EJSON, -23, "invalid_json", 400, "invalid_json", "the body is not a JSON object")         \
    X(QN_ETOOLARGE, -24, "too_large", 413, "too_large", "the body is too large")                   \
    X(QN_EURI, -25, "uri_too_long", 414, "uri_too_long", "the request target is too long")         \
    X(QN_EHEADERS, -26, "headers_too_large", 431, "headers_too_large",                             \
      "the request headers are too large")                                                         \
    X(QN_EMEDIA, -27, "unsupported_media_type", 415, "unsupported_media_type",                     \
      "unsupported media type")                                                                    \
    X(QN_EMETHOD, -28, "method_not_allowed", 405, "method_not_allowed", "method not allowed")      \
    X(QN_EUNAVAIL, -29, "unavailable", 503, "unavailable", "the daemon is shutting down")          \
    X(QN_EENDED, -30, "already_ended", 409, "already_ended", "the job has already ended")          \
    X(QN_EDBDOWN, -31, "database_unreachable", 503, "database_error",                              \
      "the database cannot be opened")                                                             \
    X(QN_EELSEWHERE, -32, "running_elsewhere", 409, "busy",                                        \
      "the job runs outside this daemon's workers")                                                \
    X(QN_ESTORED, -33, "stored_spec_invalid", 500, "invalid_spec",                                 \
      "a stored specification does not parse any more")                                          \
    X(QN_ERATE, -34, "invalid_rate", 500, "invalid_rate", "a reaction rate is negative")      \
    X(QN_ELIMIT, -35, "limit_exceeded", 422, "limit_exceeded",                                     \
      "the request needs more than a request may use")                                             \
    X(QN_ETIMEOUT, -36, "timeout", 503, "timeout", "the request ran out of time")               \
    X(QN_EREMOTE, -37, "not_distributed", 422, "not_distributed",                                 \
      "the job cannot run on several ranks here")                                                  \
    X(QN_ELOST, -38, "lost", 503, "lost", "the run was lost with its node (it may run again)")

enum qn_err {
#define QN_ERR_ENUM(sym, val, name, status, wire, msg) sym = val,
    QN_ERR_MAP(QN_ERR_ENUM)
#undef QN_ERR_ENUM
};

/* Rows in the table (QN_OK included). */
#define QN_ERR_COUNT 39

/* The short name of a code ("not_converged"); "unknown" for codes not in the table. */
const char *qn_err_name(int err);

/* The human message of a code; "unknown error" for codes not in the table. */
const char *qn_err_msg(int err);

/* The HTTP status of a code (404 for QN_ENOTFOUND); 500 for codes not in the table. */
unsigned qn_err_status(int err);

/* The wire name of a code (the JSON error "code"); "unknown" for codes not in the table. */
const char *qn_err_wire(int err);

/* The code of row i of the table into *code, for tests and documents that list every
 * code. Returns 0, or QN_ERANGE when i is not in [0, QN_ERR_COUNT). */
int qn_err_at(int i, int *code);

#endif
