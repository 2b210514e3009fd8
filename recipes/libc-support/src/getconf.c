/*
 * getconf: print system configuration values (POSIX getconf), for musl on Linux.
 *
 *   getconf [-v SPEC] NAME [PATH]
 *   getconf [-v SPEC] -a [PATH]
 *
 * Names, output shape and exit codes follow what glibc's getconf does, as observed.
 * Where a value comes from:
 *  - the kernel or the file system decides it (processors, memory, rlimits, ARG_MAX,
 *    CLK_TCK, NAME_MAX or LINK_MAX of a path...): we ask the kernel, so any C library
 *    on the same machine agrees;
 *  - it describes the C library (its limits, options, compiler flags): we ask musl,
 *    through sysconf(), confstr(), pathconf() and <limits.h>;
 *  - musl has no such name: "undefined".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>

#define VERSION_TEXT "getconf (serpentlib libc-support) 0.1"

enum { T_SC, T_PC, T_CS, T_LIM, T_K, T_UNDEF };

/* Values we work out ourselves (type T_K). */
enum {
	K_ARG_MAX, K_CLK_TCK, K_NGROUPS_MAX, K_AVPHYS_PAGES, K_NPROCS_CONF, K_NPROCS_ONLN,
	K_HOST_NAME_MAX, K_SIGQUEUE_MAX, K_UINT_MAX, K_ULONG_MAX, K_EMPTY, K_LFS64_FLAGS,
	K_XBS5_ENVS, K_V6_ENVS, K_V7_ENVS, K_CACHE
};

struct var {
	const char *name;
	int type;
	int id;   /* _SC_*, _PC_*, _CS_* or K_* */
	long num; /* T_LIM: the value */
};

#define SC(n, x) { #n, T_SC, x, 0 }
#define PC(n, x) { #n, T_PC, x, 0 }
#define CS(n, x) { #n, T_CS, x, 0 }
#define LIM(n, x) { #n, T_LIM, 0, x }
#define KV(n, x) { #n, T_K, x, 0 }
#define UNDEF(n) { #n, T_UNDEF, 0, 0 }

/* In the order glibc's getconf -a lists them. */
static const struct var vars[] = {
	PC(LINK_MAX, _PC_LINK_MAX),
	PC(_POSIX_LINK_MAX, _PC_LINK_MAX),
	PC(MAX_CANON, _PC_MAX_CANON),
	PC(_POSIX_MAX_CANON, _PC_MAX_CANON),
	PC(MAX_INPUT, _PC_MAX_INPUT),
	PC(_POSIX_MAX_INPUT, _PC_MAX_INPUT),
	PC(NAME_MAX, _PC_NAME_MAX),
	PC(_POSIX_NAME_MAX, _PC_NAME_MAX),
	PC(PATH_MAX, _PC_PATH_MAX),
	PC(_POSIX_PATH_MAX, _PC_PATH_MAX),
	PC(PIPE_BUF, _PC_PIPE_BUF),
	PC(_POSIX_PIPE_BUF, _PC_PIPE_BUF),
	PC(SOCK_MAXBUF, _PC_SOCK_MAXBUF),
	PC(_POSIX_ASYNC_IO, _PC_ASYNC_IO),
	PC(_POSIX_CHOWN_RESTRICTED, _PC_CHOWN_RESTRICTED),
	PC(_POSIX_NO_TRUNC, _PC_NO_TRUNC),
	PC(_POSIX_PRIO_IO, _PC_PRIO_IO),
	PC(_POSIX_SYNC_IO, _PC_SYNC_IO),
	PC(_POSIX_VDISABLE, _PC_VDISABLE),
	KV(ARG_MAX, K_ARG_MAX),
	SC(ATEXIT_MAX, _SC_ATEXIT_MAX),
	LIM(CHAR_BIT, CHAR_BIT),
	LIM(CHAR_MAX, CHAR_MAX),
	LIM(CHAR_MIN, CHAR_MIN),
	SC(CHILD_MAX, _SC_CHILD_MAX),
	KV(CLK_TCK, K_CLK_TCK),
	LIM(INT_MAX, INT_MAX),
	LIM(INT_MIN, INT_MIN),
	SC(IOV_MAX, _SC_IOV_MAX),
	SC(LOGNAME_MAX, _SC_LOGIN_NAME_MAX),
	LIM(LONG_BIT, LONG_BIT),
	LIM(MB_LEN_MAX, MB_LEN_MAX),
	KV(NGROUPS_MAX, K_NGROUPS_MAX),
	LIM(NL_ARGMAX, NL_ARGMAX),
	LIM(NL_LANGMAX, NL_LANGMAX),
	LIM(NL_MSGMAX, NL_MSGMAX),
	LIM(NL_NMAX, NL_NMAX),
	LIM(NL_SETMAX, NL_SETMAX),
	LIM(NL_TEXTMAX, NL_TEXTMAX),
	SC(NSS_BUFLEN_GROUP, _SC_GETGR_R_SIZE_MAX),
	SC(NSS_BUFLEN_PASSWD, _SC_GETPW_R_SIZE_MAX),
	SC(NZERO, _SC_NZERO),
	SC(OPEN_MAX, _SC_OPEN_MAX),
	SC(PAGESIZE, _SC_PAGESIZE),
	SC(PAGE_SIZE, _SC_PAGESIZE),
	SC(PASS_MAX, _SC_PASS_MAX),
	SC(PTHREAD_DESTRUCTOR_ITERATIONS, _SC_THREAD_DESTRUCTOR_ITERATIONS),
	SC(PTHREAD_KEYS_MAX, _SC_THREAD_KEYS_MAX),
	SC(PTHREAD_STACK_MIN, _SC_THREAD_STACK_MIN),
	SC(PTHREAD_THREADS_MAX, _SC_THREAD_THREADS_MAX),
	LIM(SCHAR_MAX, SCHAR_MAX),
	LIM(SCHAR_MIN, SCHAR_MIN),
	LIM(SHRT_MAX, SHRT_MAX),
	LIM(SHRT_MIN, SHRT_MIN),
	LIM(SSIZE_MAX, SSIZE_MAX),
	SC(TTY_NAME_MAX, _SC_TTY_NAME_MAX),
	SC(TZNAME_MAX, _SC_TZNAME_MAX),
	LIM(UCHAR_MAX, UCHAR_MAX),
	KV(UINT_MAX, K_UINT_MAX),
	SC(UIO_MAXIOV, _SC_UIO_MAXIOV),
	KV(ULONG_MAX, K_ULONG_MAX),
	LIM(USHRT_MAX, USHRT_MAX),
	LIM(WORD_BIT, WORD_BIT),
	KV(_AVPHYS_PAGES, K_AVPHYS_PAGES),
	KV(_NPROCESSORS_CONF, K_NPROCS_CONF),
	KV(_NPROCESSORS_ONLN, K_NPROCS_ONLN),
	SC(_PHYS_PAGES, _SC_PHYS_PAGES),
	KV(_POSIX_ARG_MAX, K_ARG_MAX),
	SC(_POSIX_ASYNCHRONOUS_IO, _SC_ASYNCHRONOUS_IO),
	SC(_POSIX_CHILD_MAX, _SC_CHILD_MAX),
	SC(_POSIX_FSYNC, _SC_FSYNC),
	SC(_POSIX_JOB_CONTROL, _SC_JOB_CONTROL),
	SC(_POSIX_MAPPED_FILES, _SC_MAPPED_FILES),
	SC(_POSIX_MEMLOCK, _SC_MEMLOCK),
	SC(_POSIX_MEMLOCK_RANGE, _SC_MEMLOCK_RANGE),
	SC(_POSIX_MEMORY_PROTECTION, _SC_MEMORY_PROTECTION),
	SC(_POSIX_MESSAGE_PASSING, _SC_MESSAGE_PASSING),
	KV(_POSIX_NGROUPS_MAX, K_NGROUPS_MAX),
	SC(_POSIX_OPEN_MAX, _SC_OPEN_MAX),
	UNDEF(_POSIX_PII),
	UNDEF(_POSIX_PII_INTERNET),
	UNDEF(_POSIX_PII_INTERNET_DGRAM),
	UNDEF(_POSIX_PII_INTERNET_STREAM),
	UNDEF(_POSIX_PII_OSI),
	UNDEF(_POSIX_PII_OSI_CLTS),
	UNDEF(_POSIX_PII_OSI_COTS),
	UNDEF(_POSIX_PII_OSI_M),
	UNDEF(_POSIX_PII_SOCKET),
	UNDEF(_POSIX_PII_XTI),
	UNDEF(_POSIX_POLL),
	SC(_POSIX_PRIORITIZED_IO, _SC_PRIORITIZED_IO),
	SC(_POSIX_PRIORITY_SCHEDULING, _SC_PRIORITY_SCHEDULING),
	SC(_POSIX_REALTIME_SIGNALS, _SC_REALTIME_SIGNALS),
	SC(_POSIX_SAVED_IDS, _SC_SAVED_IDS),
	UNDEF(_POSIX_SELECT),
	SC(_POSIX_SEMAPHORES, _SC_SEMAPHORES),
	SC(_POSIX_SHARED_MEMORY_OBJECTS, _SC_SHARED_MEMORY_OBJECTS),
	LIM(_POSIX_SSIZE_MAX, SSIZE_MAX),
	SC(_POSIX_STREAM_MAX, _SC_STREAM_MAX),
	SC(_POSIX_SYNCHRONIZED_IO, _SC_SYNCHRONIZED_IO),
	SC(_POSIX_THREADS, _SC_THREADS),
	SC(_POSIX_THREAD_ATTR_STACKADDR, _SC_THREAD_ATTR_STACKADDR),
	SC(_POSIX_THREAD_ATTR_STACKSIZE, _SC_THREAD_ATTR_STACKSIZE),
	SC(_POSIX_THREAD_PRIORITY_SCHEDULING, _SC_THREAD_PRIORITY_SCHEDULING),
	SC(_POSIX_THREAD_PRIO_INHERIT, _SC_THREAD_PRIO_INHERIT),
	SC(_POSIX_THREAD_PRIO_PROTECT, _SC_THREAD_PRIO_PROTECT),
	SC(_POSIX_THREAD_ROBUST_PRIO_INHERIT, _SC_THREAD_ROBUST_PRIO_INHERIT),
	SC(_POSIX_THREAD_ROBUST_PRIO_PROTECT, _SC_THREAD_ROBUST_PRIO_PROTECT),
	SC(_POSIX_THREAD_PROCESS_SHARED, _SC_THREAD_PROCESS_SHARED),
	SC(_POSIX_THREAD_SAFE_FUNCTIONS, _SC_THREAD_SAFE_FUNCTIONS),
	SC(_POSIX_TIMERS, _SC_TIMERS),
	SC(TIMER_MAX, _SC_TIMER_MAX),
	SC(_POSIX_TZNAME_MAX, _SC_TZNAME_MAX),
	SC(_POSIX_VERSION, _SC_VERSION),
	UNDEF(_T_IOV_MAX),
	SC(_XOPEN_CRYPT, _SC_XOPEN_CRYPT),
	SC(_XOPEN_ENH_I18N, _SC_XOPEN_ENH_I18N),
	SC(_XOPEN_LEGACY, _SC_XOPEN_LEGACY),
	SC(_XOPEN_REALTIME, _SC_XOPEN_REALTIME),
	SC(_XOPEN_REALTIME_THREADS, _SC_XOPEN_REALTIME_THREADS),
	SC(_XOPEN_SHM, _SC_XOPEN_SHM),
	SC(_XOPEN_UNIX, _SC_XOPEN_UNIX),
	SC(_XOPEN_VERSION, _SC_XOPEN_VERSION),
	SC(_XOPEN_XCU_VERSION, _SC_XOPEN_XCU_VERSION),
	SC(_XOPEN_XPG2, _SC_XOPEN_XPG2),
	SC(_XOPEN_XPG3, _SC_XOPEN_XPG3),
	SC(_XOPEN_XPG4, _SC_XOPEN_XPG4),
	SC(BC_BASE_MAX, _SC_BC_BASE_MAX),
	SC(BC_DIM_MAX, _SC_BC_DIM_MAX),
	SC(BC_SCALE_MAX, _SC_BC_SCALE_MAX),
	SC(BC_STRING_MAX, _SC_BC_STRING_MAX),
	LIM(CHARCLASS_NAME_MAX, CHARCLASS_NAME_MAX),
	SC(COLL_WEIGHTS_MAX, _SC_COLL_WEIGHTS_MAX),
	UNDEF(EQUIV_CLASS_MAX),
	SC(EXPR_NEST_MAX, _SC_EXPR_NEST_MAX),
	SC(LINE_MAX, _SC_LINE_MAX),
	SC(POSIX2_BC_BASE_MAX, _SC_BC_BASE_MAX),
	SC(POSIX2_BC_DIM_MAX, _SC_BC_DIM_MAX),
	SC(POSIX2_BC_SCALE_MAX, _SC_BC_SCALE_MAX),
	SC(POSIX2_BC_STRING_MAX, _SC_BC_STRING_MAX),
	SC(POSIX2_CHAR_TERM, _SC_2_CHAR_TERM),
	SC(POSIX2_COLL_WEIGHTS_MAX, _SC_COLL_WEIGHTS_MAX),
	SC(POSIX2_C_BIND, _SC_2_C_BIND),
	SC(POSIX2_C_DEV, _SC_2_C_DEV),
	UNDEF(POSIX2_C_VERSION),
	SC(POSIX2_EXPR_NEST_MAX, _SC_EXPR_NEST_MAX),
	SC(POSIX2_FORT_DEV, _SC_2_FORT_DEV),
	SC(POSIX2_FORT_RUN, _SC_2_FORT_RUN),
	SC(_POSIX2_LINE_MAX, _SC_LINE_MAX),
	SC(POSIX2_LINE_MAX, _SC_LINE_MAX),
	SC(POSIX2_LOCALEDEF, _SC_2_LOCALEDEF),
	SC(POSIX2_RE_DUP_MAX, _SC_RE_DUP_MAX),
	SC(POSIX2_SW_DEV, _SC_2_SW_DEV),
	SC(POSIX2_UPE, _SC_2_UPE),
	SC(POSIX2_VERSION, _SC_2_VERSION),
	SC(RE_DUP_MAX, _SC_RE_DUP_MAX),
	CS(PATH, _CS_PATH),
	CS(CS_PATH, _CS_PATH),
	KV(LFS_CFLAGS, K_EMPTY),
	KV(LFS_LDFLAGS, K_EMPTY),
	KV(LFS_LIBS, K_EMPTY),
	KV(LFS_LINTFLAGS, K_EMPTY),
	KV(LFS64_CFLAGS, K_LFS64_FLAGS),
	KV(LFS64_LDFLAGS, K_EMPTY),
	KV(LFS64_LIBS, K_EMPTY),
	KV(LFS64_LINTFLAGS, K_LFS64_FLAGS),
	KV(_XBS5_WIDTH_RESTRICTED_ENVS, K_XBS5_ENVS),
	KV(XBS5_WIDTH_RESTRICTED_ENVS, K_XBS5_ENVS),
	SC(_XBS5_ILP32_OFF32, _SC_XBS5_ILP32_OFF32),
	CS(XBS5_ILP32_OFF32_CFLAGS, _CS_POSIX_V6_ILP32_OFF32_CFLAGS),
	CS(XBS5_ILP32_OFF32_LDFLAGS, _CS_POSIX_V6_ILP32_OFF32_LDFLAGS),
	CS(XBS5_ILP32_OFF32_LIBS, _CS_POSIX_V6_ILP32_OFF32_LIBS),
	CS(XBS5_ILP32_OFF32_LINTFLAGS, _CS_POSIX_V6_ILP32_OFF32_LINTFLAGS),
	SC(_XBS5_ILP32_OFFBIG, _SC_XBS5_ILP32_OFFBIG),
	CS(XBS5_ILP32_OFFBIG_CFLAGS, _CS_POSIX_V6_ILP32_OFFBIG_CFLAGS),
	CS(XBS5_ILP32_OFFBIG_LDFLAGS, _CS_POSIX_V6_ILP32_OFFBIG_LDFLAGS),
	CS(XBS5_ILP32_OFFBIG_LIBS, _CS_POSIX_V6_ILP32_OFFBIG_LIBS),
	CS(XBS5_ILP32_OFFBIG_LINTFLAGS, _CS_POSIX_V6_ILP32_OFFBIG_LINTFLAGS),
	SC(_XBS5_LP64_OFF64, _SC_XBS5_LP64_OFF64),
	CS(XBS5_LP64_OFF64_CFLAGS, _CS_POSIX_V6_LP64_OFF64_CFLAGS),
	CS(XBS5_LP64_OFF64_LDFLAGS, _CS_POSIX_V6_LP64_OFF64_LDFLAGS),
	CS(XBS5_LP64_OFF64_LIBS, _CS_POSIX_V6_LP64_OFF64_LIBS),
	CS(XBS5_LP64_OFF64_LINTFLAGS, _CS_POSIX_V6_LP64_OFF64_LINTFLAGS),
	SC(_XBS5_LPBIG_OFFBIG, _SC_XBS5_LPBIG_OFFBIG),
	CS(XBS5_LPBIG_OFFBIG_CFLAGS, _CS_POSIX_V6_LPBIG_OFFBIG_CFLAGS),
	CS(XBS5_LPBIG_OFFBIG_LDFLAGS, _CS_POSIX_V6_LPBIG_OFFBIG_LDFLAGS),
	CS(XBS5_LPBIG_OFFBIG_LIBS, _CS_POSIX_V6_LPBIG_OFFBIG_LIBS),
	CS(XBS5_LPBIG_OFFBIG_LINTFLAGS, _CS_POSIX_V6_LPBIG_OFFBIG_LINTFLAGS),
	SC(_POSIX_V6_ILP32_OFF32, _SC_V6_ILP32_OFF32),
	CS(POSIX_V6_ILP32_OFF32_CFLAGS, _CS_POSIX_V6_ILP32_OFF32_CFLAGS),
	CS(POSIX_V6_ILP32_OFF32_LDFLAGS, _CS_POSIX_V6_ILP32_OFF32_LDFLAGS),
	CS(POSIX_V6_ILP32_OFF32_LIBS, _CS_POSIX_V6_ILP32_OFF32_LIBS),
	CS(POSIX_V6_ILP32_OFF32_LINTFLAGS, _CS_POSIX_V6_ILP32_OFF32_LINTFLAGS),
	KV(_POSIX_V6_WIDTH_RESTRICTED_ENVS, K_V6_ENVS),
	KV(POSIX_V6_WIDTH_RESTRICTED_ENVS, K_V6_ENVS),
	SC(_POSIX_V6_ILP32_OFFBIG, _SC_V6_ILP32_OFFBIG),
	CS(POSIX_V6_ILP32_OFFBIG_CFLAGS, _CS_POSIX_V6_ILP32_OFFBIG_CFLAGS),
	CS(POSIX_V6_ILP32_OFFBIG_LDFLAGS, _CS_POSIX_V6_ILP32_OFFBIG_LDFLAGS),
	CS(POSIX_V6_ILP32_OFFBIG_LIBS, _CS_POSIX_V6_ILP32_OFFBIG_LIBS),
	CS(POSIX_V6_ILP32_OFFBIG_LINTFLAGS, _CS_POSIX_V6_ILP32_OFFBIG_LINTFLAGS),
	SC(_POSIX_V6_LP64_OFF64, _SC_V6_LP64_OFF64),
	CS(POSIX_V6_LP64_OFF64_CFLAGS, _CS_POSIX_V6_LP64_OFF64_CFLAGS),
	CS(POSIX_V6_LP64_OFF64_LDFLAGS, _CS_POSIX_V6_LP64_OFF64_LDFLAGS),
	CS(POSIX_V6_LP64_OFF64_LIBS, _CS_POSIX_V6_LP64_OFF64_LIBS),
	CS(POSIX_V6_LP64_OFF64_LINTFLAGS, _CS_POSIX_V6_LP64_OFF64_LINTFLAGS),
	SC(_POSIX_V6_LPBIG_OFFBIG, _SC_V6_LPBIG_OFFBIG),
	CS(POSIX_V6_LPBIG_OFFBIG_CFLAGS, _CS_POSIX_V6_LPBIG_OFFBIG_CFLAGS),
	CS(POSIX_V6_LPBIG_OFFBIG_LDFLAGS, _CS_POSIX_V6_LPBIG_OFFBIG_LDFLAGS),
	CS(POSIX_V6_LPBIG_OFFBIG_LIBS, _CS_POSIX_V6_LPBIG_OFFBIG_LIBS),
	CS(POSIX_V6_LPBIG_OFFBIG_LINTFLAGS, _CS_POSIX_V6_LPBIG_OFFBIG_LINTFLAGS),
	SC(_POSIX_V7_ILP32_OFF32, _SC_V7_ILP32_OFF32),
	CS(POSIX_V7_ILP32_OFF32_CFLAGS, _CS_POSIX_V7_ILP32_OFF32_CFLAGS),
	CS(POSIX_V7_ILP32_OFF32_LDFLAGS, _CS_POSIX_V7_ILP32_OFF32_LDFLAGS),
	CS(POSIX_V7_ILP32_OFF32_LIBS, _CS_POSIX_V7_ILP32_OFF32_LIBS),
	CS(POSIX_V7_ILP32_OFF32_LINTFLAGS, _CS_POSIX_V7_ILP32_OFF32_LINTFLAGS),
	KV(_POSIX_V7_WIDTH_RESTRICTED_ENVS, K_V7_ENVS),
	KV(POSIX_V7_WIDTH_RESTRICTED_ENVS, K_V7_ENVS),
	SC(_POSIX_V7_ILP32_OFFBIG, _SC_V7_ILP32_OFFBIG),
	CS(POSIX_V7_ILP32_OFFBIG_CFLAGS, _CS_POSIX_V7_ILP32_OFFBIG_CFLAGS),
	CS(POSIX_V7_ILP32_OFFBIG_LDFLAGS, _CS_POSIX_V7_ILP32_OFFBIG_LDFLAGS),
	CS(POSIX_V7_ILP32_OFFBIG_LIBS, _CS_POSIX_V7_ILP32_OFFBIG_LIBS),
	CS(POSIX_V7_ILP32_OFFBIG_LINTFLAGS, _CS_POSIX_V7_ILP32_OFFBIG_LINTFLAGS),
	SC(_POSIX_V7_LP64_OFF64, _SC_V7_LP64_OFF64),
	CS(POSIX_V7_LP64_OFF64_CFLAGS, _CS_POSIX_V7_LP64_OFF64_CFLAGS),
	CS(POSIX_V7_LP64_OFF64_LDFLAGS, _CS_POSIX_V7_LP64_OFF64_LDFLAGS),
	CS(POSIX_V7_LP64_OFF64_LIBS, _CS_POSIX_V7_LP64_OFF64_LIBS),
	CS(POSIX_V7_LP64_OFF64_LINTFLAGS, _CS_POSIX_V7_LP64_OFF64_LINTFLAGS),
	SC(_POSIX_V7_LPBIG_OFFBIG, _SC_V7_LPBIG_OFFBIG),
	CS(POSIX_V7_LPBIG_OFFBIG_CFLAGS, _CS_POSIX_V7_LPBIG_OFFBIG_CFLAGS),
	CS(POSIX_V7_LPBIG_OFFBIG_LDFLAGS, _CS_POSIX_V7_LPBIG_OFFBIG_LDFLAGS),
	CS(POSIX_V7_LPBIG_OFFBIG_LIBS, _CS_POSIX_V7_LPBIG_OFFBIG_LIBS),
	CS(POSIX_V7_LPBIG_OFFBIG_LINTFLAGS, _CS_POSIX_V7_LPBIG_OFFBIG_LINTFLAGS),
	SC(_POSIX_ADVISORY_INFO, _SC_ADVISORY_INFO),
	SC(_POSIX_BARRIERS, _SC_BARRIERS),
	UNDEF(_POSIX_BASE),
	UNDEF(_POSIX_C_LANG_SUPPORT),
	UNDEF(_POSIX_C_LANG_SUPPORT_R),
	SC(_POSIX_CLOCK_SELECTION, _SC_CLOCK_SELECTION),
	SC(_POSIX_CPUTIME, _SC_CPUTIME),
	SC(_POSIX_THREAD_CPUTIME, _SC_THREAD_CPUTIME),
	UNDEF(_POSIX_DEVICE_SPECIFIC),
	UNDEF(_POSIX_DEVICE_SPECIFIC_R),
	UNDEF(_POSIX_FD_MGMT),
	UNDEF(_POSIX_FIFO),
	UNDEF(_POSIX_PIPE),
	UNDEF(_POSIX_FILE_ATTRIBUTES),
	UNDEF(_POSIX_FILE_LOCKING),
	UNDEF(_POSIX_FILE_SYSTEM),
	SC(_POSIX_MONOTONIC_CLOCK, _SC_MONOTONIC_CLOCK),
	UNDEF(_POSIX_MULTI_PROCESS),
	UNDEF(_POSIX_SINGLE_PROCESS),
	UNDEF(_POSIX_NETWORKING),
	SC(_POSIX_READER_WRITER_LOCKS, _SC_READER_WRITER_LOCKS),
	SC(_POSIX_SPIN_LOCKS, _SC_SPIN_LOCKS),
	SC(_POSIX_REGEXP, _SC_REGEXP),
	UNDEF(_REGEX_VERSION),
	SC(_POSIX_SHELL, _SC_SHELL),
	UNDEF(_POSIX_SIGNALS),
	SC(_POSIX_SPAWN, _SC_SPAWN),
	SC(_POSIX_SPORADIC_SERVER, _SC_SPORADIC_SERVER),
	SC(_POSIX_THREAD_SPORADIC_SERVER, _SC_THREAD_SPORADIC_SERVER),
	UNDEF(_POSIX_SYSTEM_DATABASE),
	UNDEF(_POSIX_SYSTEM_DATABASE_R),
	SC(_POSIX_TIMEOUTS, _SC_TIMEOUTS),
	SC(_POSIX_TYPED_MEMORY_OBJECTS, _SC_TYPED_MEMORY_OBJECTS),
	UNDEF(_POSIX_USER_GROUPS),
	UNDEF(_POSIX_USER_GROUPS_R),
	SC(POSIX2_PBS, _SC_2_PBS),
	SC(POSIX2_PBS_ACCOUNTING, _SC_2_PBS_ACCOUNTING),
	SC(POSIX2_PBS_LOCATE, _SC_2_PBS_LOCATE),
	SC(POSIX2_PBS_TRACK, _SC_2_PBS_TRACK),
	SC(POSIX2_PBS_MESSAGE, _SC_2_PBS_MESSAGE),
	SC(SYMLOOP_MAX, _SC_SYMLOOP_MAX),
	SC(STREAM_MAX, _SC_STREAM_MAX),
	SC(AIO_LISTIO_MAX, _SC_AIO_LISTIO_MAX),
	SC(AIO_MAX, _SC_AIO_MAX),
	SC(AIO_PRIO_DELTA_MAX, _SC_AIO_PRIO_DELTA_MAX),
	SC(DELAYTIMER_MAX, _SC_DELAYTIMER_MAX),
	KV(HOST_NAME_MAX, K_HOST_NAME_MAX),
	SC(LOGIN_NAME_MAX, _SC_LOGIN_NAME_MAX),
	SC(MQ_OPEN_MAX, _SC_MQ_OPEN_MAX),
	SC(MQ_PRIO_MAX, _SC_MQ_PRIO_MAX),
	UNDEF(_POSIX_DEVICE_IO),
	SC(_POSIX_TRACE, _SC_TRACE),
	SC(_POSIX_TRACE_EVENT_FILTER, _SC_TRACE_EVENT_FILTER),
	SC(_POSIX_TRACE_INHERIT, _SC_TRACE_INHERIT),
	SC(_POSIX_TRACE_LOG, _SC_TRACE_LOG),
	SC(RTSIG_MAX, _SC_RTSIG_MAX),
	SC(SEM_NSEMS_MAX, _SC_SEM_NSEMS_MAX),
	SC(SEM_VALUE_MAX, _SC_SEM_VALUE_MAX),
	KV(SIGQUEUE_MAX, K_SIGQUEUE_MAX),
	PC(FILESIZEBITS, _PC_FILESIZEBITS),
	PC(POSIX_ALLOC_SIZE_MIN, _PC_ALLOC_SIZE_MIN),
	PC(POSIX_REC_INCR_XFER_SIZE, _PC_REC_INCR_XFER_SIZE),
	PC(POSIX_REC_MAX_XFER_SIZE, _PC_REC_MAX_XFER_SIZE),
	PC(POSIX_REC_MIN_XFER_SIZE, _PC_REC_MIN_XFER_SIZE),
	PC(POSIX_REC_XFER_ALIGN, _PC_REC_XFER_ALIGN),
	PC(SYMLINK_MAX, _PC_SYMLINK_MAX),
	CS(GNU_LIBC_VERSION, _CS_GNU_LIBC_VERSION),
	CS(GNU_LIBPTHREAD_VERSION, _CS_GNU_LIBPTHREAD_VERSION),
	PC(POSIX2_SYMLINKS, _PC_2_SYMLINKS),
	KV(LEVEL1_ICACHE_SIZE, K_CACHE),
	KV(LEVEL1_ICACHE_ASSOC, K_CACHE),
	KV(LEVEL1_ICACHE_LINESIZE, K_CACHE),
	KV(LEVEL1_DCACHE_SIZE, K_CACHE),
	KV(LEVEL1_DCACHE_ASSOC, K_CACHE),
	KV(LEVEL1_DCACHE_LINESIZE, K_CACHE),
	KV(LEVEL2_CACHE_SIZE, K_CACHE),
	KV(LEVEL2_CACHE_ASSOC, K_CACHE),
	KV(LEVEL2_CACHE_LINESIZE, K_CACHE),
	KV(LEVEL3_CACHE_SIZE, K_CACHE),
	KV(LEVEL3_CACHE_ASSOC, K_CACHE),
	KV(LEVEL3_CACHE_LINESIZE, K_CACHE),
	KV(LEVEL4_CACHE_SIZE, K_CACHE),
	KV(LEVEL4_CACHE_ASSOC, K_CACHE),
	KV(LEVEL4_CACHE_LINESIZE, K_CACHE),
	SC(IPV6, _SC_IPV6),
	SC(RAW_SOCKETS, _SC_RAW_SOCKETS),
	SC(_POSIX_IPV6, _SC_IPV6),
	SC(_POSIX_RAW_SOCKETS, _SC_RAW_SOCKETS),
};

#define NVARS (sizeof vars / sizeof vars[0])

static const struct var *find(const char *name)
{
	char buf[128];
	size_t i;

	for (i = 0; i < NVARS; i++)
		if (!strcmp(vars[i].name, name))
			return &vars[i];
	/* glibc also takes _POSIX_FOO as FOO. */
	if (strlen(name) + 8 > sizeof buf)
		return NULL;
	snprintf(buf, sizeof buf, "_POSIX_%s", name);
	for (i = 0; i < NVARS; i++)
		if (!strcmp(vars[i].name, buf))
			return &vars[i];
	return NULL;
}

/* Read a file's first line into buf; 0 on success. */
static int read_line(const char *file, char *buf, size_t len)
{
	FILE *f = fopen(file, "r");
	int ok;

	if (!f)
		return -1;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (!ok)
		return -1;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static long rlimit_value(int resource)
{
	struct rlimit rl;

	if (getrlimit(resource, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return -1;
	return rl.rlim_cur > LONG_MAX ? LONG_MAX : (long)rl.rlim_cur;
}

/* What execve() allows: a quarter of the stack limit, capped at 3/4 of the
 * kernel's 8 MiB default stack, and never under 32 pages (128 KiB). */
static long arg_max(void)
{
	struct rlimit rl;
	long lim = 6L * 1024 * 1024;

	if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
	    && rl.rlim_cur / 4 < (rlim_t)lim)
		lim = (long)(rl.rlim_cur / 4);
	if (lim < 131072)
		lim = 131072;
	return lim;
}

/* Count the CPUs in a kernel list such as "0-3,5,7-8". */
static long count_cpu_list(const char *s)
{
	long n = 0, a, b;
	char *end;

	while (*s) {
		a = strtol(s, &end, 10);
		if (end == s)
			return -1;
		b = a;
		if (*end == '-') {
			s = end + 1;
			b = strtol(s, &end, 10);
			if (end == s)
				return -1;
		}
		n += b - a + 1;
		s = end;
		if (*s == ',')
			s++;
		else if (*s)
			return -1;
	}
	return n;
}

/* CPUs listed in /proc/stat (the online ones), or -1. */
static long proc_stat_cpus(void)
{
	char line[256];
	long n = 0;
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "cpu", 3) && line[3] >= '0' && line[3] <= '9')
			n++;
	fclose(f);
	return n ? n : -1;
}

/* Online CPUs: all of them, whatever this process's affinity mask says. */
static long nprocs_onln(void)
{
	char buf[1024];
	long n;

	if (read_line("/sys/devices/system/cpu/online", buf, sizeof buf) == 0
	    && (n = count_cpu_list(buf)) > 0)
		return n;
	if ((n = proc_stat_cpus()) > 0)
		return n;
	return sysconf(_SC_NPROCESSORS_ONLN);
}

/* Configured CPUs: the cpuN entries the kernel shows in sysfs. */
static long nprocs_conf(void)
{
	DIR *d = opendir("/sys/devices/system/cpu");
	struct dirent *e;
	long n = 0;

	if (d) {
		while ((e = readdir(d)))
			if (!strncmp(e->d_name, "cpu", 3) && e->d_name[3] >= '0' && e->d_name[3] <= '9'
			    && strspn(e->d_name + 3, "0123456789") == strlen(e->d_name + 3))
				n++;
		closedir(d);
	}
	return n > 0 ? n : nprocs_onln();
}

static long avphys_pages(void)
{
	struct sysinfo si;
	unsigned long long bytes;
	long page = sysconf(_SC_PAGESIZE);

	if (sysinfo(&si) != 0 || page <= 0)
		return -1;
	bytes = (unsigned long long)si.freeram * (si.mem_unit ? si.mem_unit : 1);
	return bytes / page > LONG_MAX ? LONG_MAX : (long)(bytes / page);
}

/* LEVELn_{I,D,}CACHE_{SIZE,ASSOC,LINESIZE}, from the kernel's description of cpu0's caches. */
static long cache_value(const char *name)
{
	char dir[96], file[128], buf[64];
	const char *p, *field;
	int level, want_type, i;
	long v;
	char *end;

	if (sscanf(name, "LEVEL%d_", &level) != 1)
		return -1;
	p = strchr(name, '_') + 1;
	want_type = *p == 'I' ? 'I' : *p == 'D' ? 'D' : 'U';
	p = strchr(p, '_');
	field = !strcmp(p, "_SIZE") ? "size" : !strcmp(p, "_ASSOC") ? "ways_of_associativity"
	        : "coherency_line_size";
	for (i = 0; i < 32; i++) {
		snprintf(dir, sizeof dir, "/sys/devices/system/cpu/cpu0/cache/index%d", i);
		snprintf(file, sizeof file, "%s/level", dir);
		if (read_line(file, buf, sizeof buf) != 0)
			break;
		if (atoi(buf) != level)
			continue;
		snprintf(file, sizeof file, "%s/type", dir);
		if (read_line(file, buf, sizeof buf) != 0)
			continue;
		/* A level-n "CACHE" is the unified one, or else the data one. */
		if (want_type == 'I' ? buf[0] != 'I' : want_type == 'D' ? buf[0] != 'D' : buf[0] == 'I')
			continue;
		snprintf(file, sizeof file, "%s/%s", dir, field);
		if (read_line(file, buf, sizeof buf) != 0)
			return -1;
		v = strtol(buf, &end, 10);
		if (*end == 'K')
			v *= 1024;
		else if (*end == 'M')
			v *= 1024L * 1024;
		else if (*end == 'G')
			v *= 1024L * 1024 * 1024;
		return v;
	}
	return -1;
}

/* The supported programming environments, one a line (empty if none). */
static void width_envs(char *buf, size_t len, const char *prefix, const int *sc)
{
	static const char *const env[] = { "ILP32_OFF32", "ILP32_OFFBIG", "LP64_OFF64", "LPBIG_OFFBIG" };
	size_t used = 0;
	int i;

	buf[0] = 0;
	for (i = 0; i < 4; i++) {
		if (sysconf(sc[i]) <= 0)
			continue;
		used += snprintf(buf + used, len - used, "%s%s%s", used ? "\n" : "", prefix, env[i]);
		if (used >= len)
			break;
	}
}

/* LINK_MAX by file system type; the kernel's generic limit is 127. */
static long link_max(const struct statfs *sf, const char *path)
{
	unsigned long type = (unsigned long)sf->f_type & 0xffffffffUL;
	char line[1024], fstype[64];
	struct stat st;
	unsigned maj, min;
	FILE *f;
	char *p;

	switch (type) {
	case 0xEF53: /* ext2, ext3 and ext4 share the magic: ask the mount table */
		if (stat(path, &st) != 0 || !(f = fopen("/proc/self/mountinfo", "r")))
			return 65000;
		while (fgets(line, sizeof line, f)) {
			if (sscanf(line, "%*s %*s %u:%u", &maj, &min) != 2
			    || maj != major(st.st_dev) || min != minor(st.st_dev))
				continue;
			if ((p = strstr(line, " - ")) && sscanf(p + 3, "%63s", fstype) == 1
			    && (!strcmp(fstype, "ext2") || !strcmp(fstype, "ext3"))) {
				fclose(f);
				return 32000;
			}
			break;
		}
		fclose(f);
		return 65000;
	case 0x9123683EUL: /* btrfs */
	case 0x3153464AUL: /* jfs */
		return 65535;
	case 0x58465342UL: /* xfs */
		return 2147483647L;
	case 0x52654973UL: /* reiserfs */
		return 64535;
	case 0x137F: case 0x138F: /* minix v1 */
		return 250;
	case 0x2468: case 0x2478: case 0x4D5A: /* minix v2, v3 */
		return 65530;
	case 0x00011954UL: /* ufs */
		return 32000;
	default:
		return 127;
	}
}

/* 64 for file systems known to hold files over 2 GiB, else the POSIX minimum 32. */
static long filesize_bits(const struct statfs *sf)
{
	switch ((unsigned long)sf->f_type & 0xffffffffUL) {
	case 0xEF53:        /* ext2/3/4 */
	case 0x9123683EUL:  /* btrfs */
	case 0x58465342UL:  /* xfs */
	case 0x3153464AUL:  /* jfs */
	case 0x52654973UL:  /* reiserfs */
	case 0xF2F52010UL:  /* f2fs */
	case 0x5346544EUL:  /* ntfs */
	case 0x15013346UL:  /* udf */
	case 0x6969:        /* nfs */
	case 0xFF534D42UL:  /* cifs */
	case 0xFE534D42UL:  /* smb2 */
	case 0x2FC12FC1UL:  /* zfs */
		return 64;
	default:
		return 32;
	}
}

/* A pathconf() value. Returns 0, or -1 with errno set when PATH is unusable. */
static int path_value(int name, const char *path, long *out)
{
	struct statfs sf;

	if (!*path) { /* names no file at all */
		errno = ENOENT;
		return -1;
	}
	switch (name) {
	case _PC_LINK_MAX: case _PC_NAME_MAX: case _PC_FILESIZEBITS: case _PC_ALLOC_SIZE_MIN:
	case _PC_REC_MIN_XFER_SIZE: case _PC_REC_XFER_ALIGN: case _PC_CHOWN_RESTRICTED:
	case _PC_ASYNC_IO: case _PC_2_SYMLINKS:
		/* These depend on the file system: PATH must exist. */
		if (statfs(path, &sf) != 0)
			return -1;
		break;
	default:
		*out = pathconf(path, name);
		return 0;
	}
	switch (name) {
	case _PC_LINK_MAX:
		*out = link_max(&sf, path);
		break;
	case _PC_NAME_MAX:
		*out = sf.f_namelen > 0 ? (long)sf.f_namelen : NAME_MAX;
		break;
	case _PC_FILESIZEBITS:
		*out = filesize_bits(&sf);
		break;
	case _PC_ALLOC_SIZE_MIN: case _PC_REC_MIN_XFER_SIZE: case _PC_REC_XFER_ALIGN:
		*out = sf.f_bsize > 0 ? (long)sf.f_bsize : -1;
		break;
	default:
		*out = pathconf(path, name);
	}
	return 0;
}

static long kernel_value(const struct var *v)
{
	struct utsname u;
	unsigned long t;

	switch (v->id) {
	case K_ARG_MAX:
		return arg_max();
	case K_CLK_TCK:
		t = getauxval(AT_CLKTCK);
		return t ? (long)t : sysconf(_SC_CLK_TCK);
	case K_NGROUPS_MAX: {
		char buf[32];
		if (read_line("/proc/sys/kernel/ngroups_max", buf, sizeof buf) == 0 && atol(buf) > 0)
			return atol(buf);
		return 65536; /* the kernel's limit since Linux 2.6.4 */
	}
	case K_AVPHYS_PAGES:
		return avphys_pages();
	case K_NPROCS_CONF:
		return nprocs_conf();
	case K_NPROCS_ONLN:
		return nprocs_onln();
	case K_HOST_NAME_MAX:
		return (long)sizeof u.nodename - 1;
	case K_SIGQUEUE_MAX:
		return rlimit_value(RLIMIT_SIGPENDING);
	case K_CACHE:
		return cache_value(v->name);
	}
	return -1;
}

/*
 * Put the value of v in buf. Returns 0 when defined, 1 when undefined,
 * -1 (errno set) when PATH is unusable.
 */
static int value(const struct var *v, const char *path, char *buf, size_t len)
{
	static const int xbs5[] = { _SC_XBS5_ILP32_OFF32, _SC_XBS5_ILP32_OFFBIG,
	                            _SC_XBS5_LP64_OFF64, _SC_XBS5_LPBIG_OFFBIG };
	static const int v6[] = { _SC_V6_ILP32_OFF32, _SC_V6_ILP32_OFFBIG,
	                          _SC_V6_LP64_OFF64, _SC_V6_LPBIG_OFFBIG };
	static const int v7[] = { _SC_V7_ILP32_OFF32, _SC_V7_ILP32_OFFBIG,
	                          _SC_V7_LP64_OFF64, _SC_V7_LPBIG_OFFBIG };
	long n;

	switch (v->type) {
	case T_SC:
		n = sysconf(v->id);
		break;
	case T_LIM:
		n = v->num;
		break;
	case T_PC:
		if (path_value(v->id, path, &n) != 0)
			return -1;
		break;
	case T_CS:
		buf[0] = 0;
		return confstr(v->id, buf, len) == 0 ? 1 : 0;
	case T_K:
		switch (v->id) {
		case K_UINT_MAX:
			snprintf(buf, len, "%u", UINT_MAX);
			return 0;
		case K_ULONG_MAX:
			snprintf(buf, len, "%lu", ULONG_MAX);
			return 0;
		case K_EMPTY:
			buf[0] = 0;
			return 0;
		case K_LFS64_FLAGS:
			/* off_t is always 64 bits in musl, but the *64 names need this */
			snprintf(buf, len, "-D_LARGEFILE64_SOURCE");
			return 0;
		case K_XBS5_ENVS:
			width_envs(buf, len, "XBS5_", xbs5);
			return 0;
		case K_V6_ENVS:
			width_envs(buf, len, "POSIX_V6_", v6);
			return 0;
		case K_V7_ENVS:
			width_envs(buf, len, "POSIX_V7_", v7);
			return 0;
		}
		n = kernel_value(v);
		break;
	default:
		return 1;
	}
	if (n == -1)
		return 1;
	snprintf(buf, len, "%ld", n);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "Usage: getconf [-v specification] variable_name [pathname]\n"
	                "       getconf -a [pathname]\n");
	return 2;
}

static int finish(void)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "getconf: write error: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

static int print_all(const char *path)
{
	char buf[4096];
	size_t i;

	for (i = 0; i < NVARS; i++) {
		int r = value(&vars[i], path, buf, sizeof buf);
		printf("%-34s %s\n", vars[i].name, r == 0 ? buf : "");
	}
	return finish();
}

int main(int argc, char **argv)
{
	const struct var *v;
	const char *path;
	char buf[4096];
	int i = 1, r;

	if (argc > 1 && !strcmp(argv[1], "--help")) {
		printf("Usage: getconf [-v SPEC] NAME [PATH]\n"
		       "       getconf [-v SPEC] -a [PATH]\n"
		       "Print the value of a system configuration variable: a sysconf() or\n"
		       "confstr() name, or a pathconf() name for PATH. -a prints all of them\n"
		       "(pathconf values for PATH, default /). -v SPEC is accepted and ignored:\n"
		       "there is one programming environment.\n");
		return finish();
	}
	if (argc > 1 && !strcmp(argv[1], "--version")) {
		printf("%s\n", VERSION_TEXT);
		return finish();
	}
	if (i < argc && !strncmp(argv[i], "-v", 2)) {
		if (argv[i][2])
			i += 1;
		else if (i + 1 < argc)
			i += 2;
		else
			return usage();
	}
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	else if (i < argc && !strcmp(argv[i], "-a")) {
		if (argc - i > 2)
			return usage();
		return print_all(i + 1 < argc ? argv[i + 1] : "/");
	}
	if (argc - i < 1 || argc - i > 2)
		return usage();

	v = find(argv[i]);
	if (!v) {
		fprintf(stderr, "getconf: Unrecognized variable `%s'\n", argv[i]);
		return 2;
	}
	path = i + 1 < argc ? argv[i + 1] : NULL;
	if ((v->type == T_PC) != (path != NULL))
		return usage();
	r = value(v, path, buf, sizeof buf);
	if (r < 0) {
		fprintf(stderr, "getconf: pathconf: %s: %s\n", path, strerror(errno));
		return 3;
	}
	printf("%s\n", r == 0 ? buf : "undefined");
	return finish();
}
