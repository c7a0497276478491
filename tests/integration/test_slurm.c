/*
 * test_slurm.c: jobs through a real single-node Slurm (issue 13), started
 * once for the whole program in a temporary directory and stopped after
 * (tests/support/qt_slurm.h).
 *
 * Covers: the cluster itself: `srun --mpi=pmix -n 2` runs an MPI program
 * (an MPI_Allreduce over both ranks, compiled here with mpicc) under
 * Debian's PMIx plugin.
 *
 * Where Slurm cannot run (not root, slurm-wlm missing) every test is skipped
 * with the reason; on Debian 12 as root a cluster that does not come up
 * fails them. No fixed sleeps: every wait is a poll with a deadline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qn_test.h"
#include "qt_slurm.h"

/* The cluster of this program (group setup to teardown). */
static struct qt_slurm cluster;
static int cluster_rc;       /* qt_slurm_start's: 0 up, 1 skip, -1 fail */
static char cluster_why[4096]; /* why it is not up */

/* Each test's first line: skips or fails when the cluster is not up. */
static void need_cluster(const char *test)
{
    if (cluster_rc > 0)
        qt_skip_test(test, cluster_why);
    if (cluster_rc < 0)
        fail_msg("%s", cluster_why);
}

/* An MPI program: every rank adds its rank + 1; rank 0 prints the sum and the size. */
static const char *const MPI_SUM_C =
    "#include <mpi.h>\n"
    "#include <stdio.h>\n"
    "int main(int argc, char **argv) {\n"
    "    int rank = 0, size = 0, mine, sum = 0;\n"
    "    MPI_Init(&argc, &argv);\n"
    "    MPI_Comm_rank(MPI_COMM_WORLD, &rank);\n"
    "    MPI_Comm_size(MPI_COMM_WORLD, &size);\n"
    "    mine = rank + 1;\n"
    "    MPI_Allreduce(&mine, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);\n"
    "    if (rank == 0) printf(\"size %d sum %d\\n\", size, sum);\n"
    "    MPI_Finalize();\n"
    "    return 0;\n"
    "}\n";

/* srun --mpi=pmix -n 2 of an MPI program: both ranks meet in one MPI_Allreduce. */
static void test_srun_pmix_two_ranks(void **state)
{
    struct qt_dir *f = *state;
    need_cluster(__func__);
    if (access("/usr/bin/mpicc", X_OK) != 0)
        qt_skip("mpicc is not installed (Debian: libopenmpi-dev; make deps)");
    assert_int_equal(qt_write_file(f->dir, "sum.c", MPI_SUM_C), 0);
    struct qt_run r;
    const char *cc[] = {"/usr/bin/mpicc", "-o", "sum", "sum.c", NULL};
    assert_int_equal(qt_run(f->dir, cc, NULL, &r), 0);
    qt_expect_status(&r, 0);
    qt_run_free(&r);
    const char *srun[] = {"/usr/bin/srun", "--mpi=pmix", "-n", "2", "-t", "1", "./sum", NULL};
    assert_int_equal(qt_run(f->dir, srun, NULL, &r), 0);
    qt_expect_status(&r, 0);
    assert_string_equal(r.out, "size 2 sum 3\n");
    qt_run_free(&r);
}

static int group_setup(void **state)
{
    (void)state;
    cluster_rc = qt_slurm_start(&cluster, cluster_why, sizeof cluster_why);
    if (cluster_rc < 0)
        fprintf(stderr, "test_slurm: %s\n", cluster_why);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    qt_slurm_stop(&cluster);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_srun_pmix_two_ranks, qt_dir_setup, qt_dir_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
