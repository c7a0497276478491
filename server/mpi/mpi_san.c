/*
 * mpi_san.c: qn-mpi under AddressSanitizer (the tests build it so).
 *
 * Open MPI keeps what MPI_Init allocates (its components, the PMIx client,
 * the libevent loop of its progress thread) until the process exits, and
 * LeakSanitizer would fail every rank at exit for it. These hooks, compiled
 * only into a sanitizer build, suppress leaks whose stack passes through
 * Open MPI's libraries (libmpi, libopen-pal, libopen-rte) or the libevent
 * loop that only Open MPI runs here; a leak of our own code is still
 * reported. Malloc stacks are unwound fully (fast_unwind_on_malloc=0), since
 * Open MPI's libraries have no frame pointers and a fast unwind stops inside
 * them, before the library names the suppressions match. Being hooks, they
 * travel with the binary through the daemon and mpirun, and an
 * ASAN_OPTIONS or LSAN_OPTIONS of the environment still overrides them.
 */
#if defined(__SANITIZE_ADDRESS__)

const char *__asan_default_options(void);
const char *__lsan_default_suppressions(void);

const char *__asan_default_options(void)
{
    return "fast_unwind_on_malloc=0";
}

const char *__lsan_default_suppressions(void)
{
    return "leak:libmpi.so\n"
           "leak:libopen-pal.so\n"
           "leak:libopen-rte.so\n"
           "leak:libevent_core\n";
}

#else

typedef int mpi_san_unused; /* ISO C wants a translation unit to declare something */

#endif
