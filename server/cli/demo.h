/*
 * demo.h: `qn demo`, the whole pipeline over HTTP against a daemon it
 * starts (see demo.c).
 */
#ifndef QN_DEMO_H
#define QN_DEMO_H

/* Runs `qn demo` with argv[0] = "demo"; self is the path of this program
 * (borrowed), started again as `qn serve`. Returns the exit status. */
int demo_main(int argc, char **argv, const char *self);

#endif
