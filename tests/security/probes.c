/*
 * Security probes run inside an Updraft execution environment (tests/e2e/test_security.py).
 *
 * Each mode tries something a function must not be able to do, or must be able to do, and
 * prints what happened as one JSON object on stdout. Outcomes are "ok" or the errno name of
 * the failure; a probe that was killed by a signal is reported by the signal's name.
 *
 *   probes syscalls          every denied syscall, each in its own child process
 *   probes harmless          ordinary syscalls; exit status 0 when all of them work
 *   probes threads           Seccomp/NoNewPrivs of every thread of a multi-threaded process
 *   probes fds               descriptors open at start
 *   probes write PATH...     open each path for writing (also /proc/self/exe)
 *   probes rdonly PATH...    whether each path lies on a read-only mount
 *   probes connect PORT...   TCP connect to 127.0.0.1:PORT
 *   probes nofile            open /dev/null until it fails
 *   probes forkbomb MS       fork until it fails, hold the children MS milliseconds, reap them
 *   probes memhog            allocate and touch memory until killed
 *
 * Build: gcc -O1 -pthread -o probes probes.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif

static const char *err_name(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

/* ------------------------------------------------------------------ denied syscalls */

static long probe_keyctl(void) { return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0); }
static long probe_add_key(void) { return syscall(SYS_add_key, "user", "updraft", "x", 1, KEY_SPEC_PROCESS_KEYRING); }
static long probe_request_key(void) { return syscall(SYS_request_key, "user", "updraft", NULL, 0); }
static long probe_bpf(void) { return syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, NULL, 0); }
static long probe_perf_event_open(void) {
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = PERF_TYPE_SOFTWARE;
    a.config = PERF_COUNT_SW_CPU_CLOCK;
    a.exclude_kernel = 1;
    return syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
}
static long probe_kexec_load(void) { return syscall(SYS_kexec_load, 0, 0, NULL, 0); }
static long probe_kexec_file_load(void) { return syscall(SYS_kexec_file_load, -1, -1, 0, "", 0); }
static long probe_init_module(void) { return syscall(SYS_init_module, NULL, 0, ""); }
static long probe_finit_module(void) { return syscall(SYS_finit_module, -1, "", 0); }
static long probe_delete_module(void) { return syscall(SYS_delete_module, "updraft_none", 0); }
static long probe_open_by_handle_at(void) { return syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, O_RDONLY); }
static long probe_name_to_handle_at(void) { return syscall(SYS_name_to_handle_at, AT_FDCWD, "/", NULL, NULL, 0); }
/* On our own memory these would succeed if the filter let them through. */
static long probe_process_vm_readv(void) {
    char src[8] = "secret", dst[8];
    struct iovec l = {dst, sizeof dst}, r = {src, sizeof src};
    return syscall(SYS_process_vm_readv, getpid(), &l, 1, &r, 1, 0);
}
static long probe_process_vm_writev(void) {
    char src[8] = "secret", dst[8];
    struct iovec l = {src, sizeof src}, r = {dst, sizeof dst};
    return syscall(SYS_process_vm_writev, getpid(), &l, 1, &r, 1, 0);
}
static long probe_ptrace(void) { return syscall(SYS_ptrace, PTRACE_TRACEME, 0, NULL, NULL); }
static long probe_userfaultfd(void) { return syscall(SYS_userfaultfd, O_CLOEXEC); }
static long probe_mount(void) { return syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL); }
static long probe_umount2(void) { return syscall(SYS_umount2, "/tmp", MNT_DETACH); }
static long probe_pivot_root(void) { return syscall(SYS_pivot_root, ".", "."); }
static long probe_chroot(void) { return syscall(SYS_chroot, "/tmp"); }
static long probe_unshare_user(void) { return syscall(SYS_unshare, CLONE_NEWUSER); }
static long probe_unshare_net(void) { return syscall(SYS_unshare, CLONE_NEWNET); }
static long probe_setns(void) { return syscall(SYS_setns, 0, 0); }
static long probe_clone_newuser(void) {
    long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    return r;
}
static long probe_clone_newpid(void) {
    long r = syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, 0);
    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    return r;
}
static long probe_clone3(void) { return syscall(SYS_clone3, NULL, 0); }
/* fd 0 is /dev/null: without the filter these fail with ENOTTY instead. */
static long probe_tiocsti(void) { char c = 'x'; return syscall(SYS_ioctl, 0, TIOCSTI, &c); }
static long probe_tiocsti_high_bits(void) { char c = 'x'; return syscall(SYS_ioctl, 0, (unsigned long)TIOCSTI | (1UL << 32), &c); }
static long probe_tioclinux(void) { char c = 2; return syscall(SYS_ioctl, 0, TIOCLINUX, &c); }
static long probe_clock_settime(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return syscall(SYS_clock_settime, CLOCK_REALTIME, &ts);
}
static long probe_settimeofday(void) { return syscall(SYS_settimeofday, NULL, NULL); }
/* A read-only adjtimex (modes 0) needs no privilege: only the filter stops it. */
static long probe_adjtimex(void) { struct timex t; memset(&t, 0, sizeof t); return syscall(SYS_adjtimex, &t); }
static long probe_clock_adjtime(void) { struct timex t; memset(&t, 0, sizeof t); return syscall(SYS_clock_adjtime, CLOCK_REALTIME, &t); }
static long probe_swapon(void) { return syscall(SYS_swapon, "/tmp/swap", 0); }
static long probe_swapoff(void) { return syscall(SYS_swapoff, "/tmp/swap"); }
static long probe_reboot(void) { return syscall(SYS_reboot, 0, 0, 0, NULL); }
static long probe_sethostname(void) { return syscall(SYS_sethostname, "evil", 4); }
static long probe_personality_no_aslr(void) { return syscall(SYS_personality, ADDR_NO_RANDOMIZE); }
static long probe_personality_read_implies_exec(void) { return syscall(SYS_personality, READ_IMPLIES_EXEC); }
static long probe_io_uring_setup(void) { char p[120]; memset(p, 0, sizeof p); return syscall(SYS_io_uring_setup, 1, p); }
static long probe_acct(void) { return syscall(SYS_acct, NULL); }
static long probe_syslog(void) { char b[16]; return syscall(SYS_syslog, 3 /* READ_ALL */, b, sizeof b); }
static long probe_socket_vsock(void) { return syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0); }
static long probe_socket_packet(void) { return syscall(SYS_socket, AF_PACKET, SOCK_RAW, 0); }
static long probe_socket_alg(void) { return syscall(SYS_socket, AF_ALG, SOCK_SEQPACKET, 0); }
static long probe_unknown_999(void) { return syscall(999); }
#ifdef __x86_64__
static long probe_x32_getpid(void) { return syscall(0x40000000 | 39); }
static long probe_iopl(void) { return syscall(SYS_iopl, 3); }
static long probe_ioperm(void) { return syscall(SYS_ioperm, 0x80, 1, 1); }
#endif

struct probe {
    const char *name;
    long (*fn)(void);
};

static const struct probe DENIED[] = {
    {"keyctl", probe_keyctl},
    {"add_key", probe_add_key},
    {"request_key", probe_request_key},
    {"bpf", probe_bpf},
    {"perf_event_open", probe_perf_event_open},
    {"kexec_load", probe_kexec_load},
    {"kexec_file_load", probe_kexec_file_load},
    {"init_module", probe_init_module},
    {"finit_module", probe_finit_module},
    {"delete_module", probe_delete_module},
    {"open_by_handle_at", probe_open_by_handle_at},
    {"name_to_handle_at", probe_name_to_handle_at},
    {"process_vm_readv", probe_process_vm_readv},
    {"process_vm_writev", probe_process_vm_writev},
    {"ptrace", probe_ptrace},
    {"userfaultfd", probe_userfaultfd},
    {"mount", probe_mount},
    {"umount2", probe_umount2},
    {"pivot_root", probe_pivot_root},
    {"chroot", probe_chroot},
    {"unshare_user", probe_unshare_user},
    {"unshare_net", probe_unshare_net},
    {"setns", probe_setns},
    {"clone_newuser", probe_clone_newuser},
    {"clone_newpid", probe_clone_newpid},
    {"clone3", probe_clone3},
    {"ioctl_tiocsti", probe_tiocsti},
    {"ioctl_tiocsti_high_bits", probe_tiocsti_high_bits},
    {"ioctl_tioclinux", probe_tioclinux},
    {"clock_settime", probe_clock_settime},
    {"settimeofday", probe_settimeofday},
    {"adjtimex", probe_adjtimex},
    {"clock_adjtime", probe_clock_adjtime},
    {"swapon", probe_swapon},
    {"swapoff", probe_swapoff},
    {"reboot", probe_reboot},
    {"sethostname", probe_sethostname},
    {"personality_no_aslr", probe_personality_no_aslr},
    {"personality_read_implies_exec", probe_personality_read_implies_exec},
    {"io_uring_setup", probe_io_uring_setup},
    {"acct", probe_acct},
    {"syslog", probe_syslog},
    {"socket_vsock", probe_socket_vsock},
    {"socket_packet", probe_socket_packet},
    {"socket_alg", probe_socket_alg},
    {"unknown_999", probe_unknown_999},
#ifdef __x86_64__
    {"x32_getpid", probe_x32_getpid},
    {"iopl", probe_iopl},
    {"ioperm", probe_ioperm},
#endif
};

/* Runs fn in a child: exit status 0 = success, errno otherwise; death by signal is reported. */
static void run_isolated(const char *name, long (*fn)(void), int first) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        errno = 0;
        long r = fn();
        _exit(r < 0 ? (errno ? errno : 255) : 0);
    }
    int st = 0;
    const char *outcome;
    char buf[32];
    if (pid < 0) {
        outcome = "fork-failed";
    } else {
        waitpid(pid, &st, 0);
        if (WIFSIGNALED(st)) {
            snprintf(buf, sizeof buf, "SIG%s", sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?");
            outcome = buf;
        } else if (WEXITSTATUS(st) == 0) {
            outcome = "ok";
        } else {
            outcome = err_name(WEXITSTATUS(st));
        }
    }
    printf("%s\"%s\": \"%s\"", first ? "" : ", ", name, outcome);
}

static int mode_syscalls(void) {
    printf("{");
    for (size_t i = 0; i < sizeof DENIED / sizeof DENIED[0]; i++)
        run_isolated(DENIED[i].name, DENIED[i].fn, i == 0);
    printf("}\n");
    return 0;
}

/* ------------------------------------------------------------------ harmless and threads */

static void *idle_thread(void *arg) {
    pthread_barrier_t *b = arg;
    pthread_barrier_wait(b);
    pthread_barrier_wait(b);
    return NULL;
}

static int mode_harmless(void) {
    struct utsname u;
    struct timespec ts;
    char buf[16];
    int fails = 0;
    fails += getpid() <= 0;
    fails += uname(&u) != 0;
    fails += clock_gettime(CLOCK_MONOTONIC, &ts) != 0;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    fails += fd < 0;
    fails += fd >= 0 && read(fd, buf, sizeof buf) != 0;
    if (fd >= 0)
        close(fd);
    fails += syscall(SYS_personality, 0xffffffffUL) < 0;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    fails += s < 0;
    if (s >= 0)
        close(s);
    int u6 = socket(AF_UNIX, SOCK_STREAM, 0);
    fails += u6 < 0;
    if (u6 >= 0)
        close(u6);
    void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fails += m == MAP_FAILED;
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, 2);
    pthread_t t;
    if (pthread_create(&t, NULL, idle_thread, &b) == 0) {
        pthread_barrier_wait(&b);
        pthread_barrier_wait(&b);
        pthread_join(t, NULL);
    } else {
        fails++;
    }
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    int st = 1;
    fails += pid < 0 || waitpid(pid, &st, 0) != pid || st != 0;
    printf("{\"failures\": %d}\n", fails);
    return fails ? 1 : 0;
}

static void status_field(const char *path, const char *field, char *out, size_t n) {
    snprintf(out, n, "missing");
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[256];
    size_t len = strlen(field);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            char *v = line + len + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = 0;
            snprintf(out, n, "%s", v);
        }
    }
    fclose(f);
}

static int mode_threads(void) {
    enum { N = 4 };
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, N + 1);
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        pthread_create(&t[i], NULL, idle_thread, &b);
    pthread_barrier_wait(&b);
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int first = 1;
    printf("{");
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], sc[32], nnp[32];
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        status_field(path, "Seccomp", sc, sizeof sc);
        status_field(path, "NoNewPrivs", nnp, sizeof nnp);
        printf("%s\"%s\": {\"Seccomp\": \"%s\", \"NoNewPrivs\": \"%s\"}", first ? "" : ", ", e->d_name, sc, nnp);
        first = 0;
    }
    printf("}\n");
    if (d)
        closedir(d);
    pthread_barrier_wait(&b);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    return 0;
}

/* ------------------------------------------------------------------ files, network, limits */

static int mode_fds(void) {
    printf("[");
    int first = 1;
    for (int fd = 0; fd < 4096; fd++) {
        if (fcntl(fd, F_GETFD) >= 0) {
            printf("%s%d", first ? "" : ", ", fd);
            first = 0;
        }
    }
    printf("]\n");
    return 0;
}

static int mode_write(int argc, char **argv) {
    printf("{");
    for (int i = 0; i < argc; i++) {
        int fd = open(argv[i], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        const char *outcome = fd >= 0 ? "ok" : err_name(errno);
        if (fd >= 0) {
            close(fd);
            if (strncmp(argv[i], "/proc/", 6) != 0)
                unlink(argv[i]);
        }
        printf("%s\"%s\": \"%s\"", i ? ", " : "", argv[i], outcome);
    }
    printf("}\n");
    return 0;
}

static int mode_rdonly(int argc, char **argv) {
    printf("{");
    for (int i = 0; i < argc; i++) {
        struct statvfs st;
        const char *outcome = statvfs(argv[i], &st) != 0 ? err_name(errno)
                              : (st.f_flag & ST_RDONLY) ? "read-only" : "writable";
        printf("%s\"%s\": \"%s\"", i ? ", " : "", argv[i], outcome);
    }
    printf("}\n");
    return 0;
}

static int mode_connect(int argc, char **argv) {
    printf("{");
    for (int i = 0; i < argc; i++) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)atoi(argv[i]));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        const char *outcome = connect(s, (struct sockaddr *)&a, sizeof a) == 0 ? "connected" : err_name(errno);
        close(s);
        printf("%s\"%s\": \"%s\"", i ? ", " : "", argv[i], outcome);
    }
    printf("}\n");
    return 0;
}

static int mode_nofile(void) {
    int last = -1, n = 0, err = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0) {
            err = errno;
            break;
        }
        last = fd;
        n++;
    }
    printf("{\"opened\": %d, \"last_fd\": %d, \"errno\": \"%s\"}\n", n, last, err_name(err));
    return 0;
}

static int mode_forkbomb(long hold_ms) {
    static pid_t kids[100000];
    int n = 0, err = 0;
    while (n < (int)(sizeof kids / sizeof kids[0])) {
        pid_t p = fork();
        if (p == 0) {
            for (;;)
                pause();
        }
        if (p < 0) {
            err = errno;
            break;
        }
        kids[n++] = p;
    }
    struct timespec ts = {hold_ms / 1000, (hold_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    for (int i = 0; i < n; i++)
        kill(kids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        waitpid(kids[i], NULL, 0);
    printf("{\"forked\": %d, \"errno\": \"%s\"}\n", n, err_name(err));
    return 0;
}

static int mode_memhog(void) {
    size_t total = 0;
    for (;;) {
        char *p = malloc(1 << 20);
        if (!p) {
            printf("{\"allocated_mb\": %zu, \"errno\": \"ENOMEM\"}\n", total);
            return 1;
        }
        memset(p, 0x5a, 1 << 20);
        total++;
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    if (argc < 2) {
        fprintf(stderr, "usage: probes MODE [ARGS]\n");
        return 2;
    }
    const char *m = argv[1];
    int r;
    if (!strcmp(m, "syscalls"))
        r = mode_syscalls();
    else if (!strcmp(m, "harmless"))
        r = mode_harmless();
    else if (!strcmp(m, "threads"))
        r = mode_threads();
    else if (!strcmp(m, "fds"))
        r = mode_fds();
    else if (!strcmp(m, "write"))
        r = mode_write(argc - 2, argv + 2);
    else if (!strcmp(m, "rdonly"))
        r = mode_rdonly(argc - 2, argv + 2);
    else if (!strcmp(m, "connect"))
        r = mode_connect(argc - 2, argv + 2);
    else if (!strcmp(m, "nofile"))
        r = mode_nofile();
    else if (!strcmp(m, "forkbomb"))
        r = mode_forkbomb(argc > 2 ? atol(argv[2]) : 1000);
    else if (!strcmp(m, "memhog"))
        r = mode_memhog();
    else {
        fprintf(stderr, "unknown mode %s\n", m);
        r = 2;
    }
    fflush(stdout);
    return r;
}
