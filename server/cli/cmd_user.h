/*
 * cmd_user.h: the `qn user` command (lab members and their tokens).
 */
#ifndef QN_CMD_USER_H
#define QN_CMD_USER_H

/* `qn user add NAME [--admin] | list | revoke NAME` [--db PATH]: argv[0] is
 * "user". Returns the exit status (0 done, 1 failure, 2 usage). */
int cmd_user_main(int argc, char **argv);

#endif
