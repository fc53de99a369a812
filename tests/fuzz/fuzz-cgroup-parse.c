/* SPDX-License-Identifier: MIT */
/* Fuzzes the parsers of cgroup and /proc files (cgroup-parse.c), each with the input as the file's
 * contents, and proc_pid_get_ppid() and proc_pid_running() through a fake /proc whose one stat file holds
 * the input: they must agree with proc_parse_stat() on the same text, and close what they open. The first
 * 16 bytes, as two numbers, also go to proc_ticks_to_usec(). */

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup-parse.h"
#include "cgroup-proc.h"
#include "fuzz-util.h"

#define FAKE_PID 4242

static char proc_dir[PATH_MAX];
static int proc_fd = -EBADF, stat_fd = -EBADF;

static void remove_fake_proc(void) {
        char path[PATH_MAX + 32];

        snprintf(path, sizeof path, "%s/%d/stat", proc_dir, FAKE_PID);
        (void) unlink(path);
        snprintf(path, sizeof path, "%s/%d", proc_dir, FAKE_PID);
        (void) rmdir(path);
        (void) rmdir(proc_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        /* tmpfs where there is one: rewriting a file on ext4 for every input makes the run 7 times
         * slower. */
        const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ?: "/tmp";
        char pid_dir[16], stat_file[32];

        snprintf(proc_dir, sizeof proc_dir, "%s/corral-fuzz-proc.XXXXXX", tmp);
        fuzz_check(mkdtemp(proc_dir), "mkdtemp in '%s': %m", tmp);
        atexit(remove_fake_proc);
        proc_fd = open(proc_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        fuzz_check(proc_fd >= 0, "open '%s': %m", proc_dir);
        snprintf(pid_dir, sizeof pid_dir, "%d", FAKE_PID);
        fuzz_check(mkdirat(proc_fd, pid_dir, 0700) == 0, "mkdir: %m");
        /* Kept open and rewritten in place for every input: cheaper than creating it each time. */
        snprintf(stat_file, sizeof stat_file, "%d/stat", FAKE_PID);
        stat_fd = openat(proc_fd, stat_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        fuzz_check(stat_fd >= 0, "open the fake stat file: %m");
        return 0;
}

static void write_fake_stat(const uint8_t *data, size_t size) {
        fuzz_check(ftruncate(stat_fd, 0) == 0 && pwrite(stat_fd, data, size, 0) == (ssize_t) size,
                   "write the fake stat file: %m");
}

static void fuzz_stat(const char *s, const uint8_t *data, size_t size) {
        unsigned fds_before = fuzz_count_fds();
        ProcStat st = {};
        pid_t ppid = 0;
        int r, r_file, running;

        r = proc_parse_stat(s, &st);
        fuzz_check(r == 0 || r == -EINVAL || r == -ERANGE, "proc_parse_stat: %d", r);
        fuzz_check(r < 0 || st.ppid >= 0, "ppid %d", (int) st.ppid);

        write_fake_stat(data, size);
        r_file = proc_pid_get_ppid(proc_fd, FAKE_PID, &ppid);
        fuzz_check(r_file == r, "proc_pid_get_ppid: %d, proc_parse_stat: %d", r_file, r);
        fuzz_check(r < 0 || ppid == st.ppid, "ppid %d from the file, %d from the text", (int) ppid,
                   (int) st.ppid);
        running = proc_pid_running(proc_fd, FAKE_PID);
        fuzz_check(r < 0 ? running == r : running == !strchr("ZXx", st.state),
                   "proc_pid_running: %d (state '%c')", running, st.state);
        fuzz_check(fuzz_count_fds() == fds_before, "an fd leaked reading the stat file");
}

static void fuzz_self(const char *s) {
        _cleanup_free_ char *unified = NULL, *memory = NULL;
        int r;

        r = cgroup_parse_self(s, &unified, &memory);
        if (r < 0)
                return;
        fuzz_check(!unified || (unified[0] == '/' && !strchr(unified, '\n')), "cgroup2 path '%s'", unified);
        fuzz_check(!memory || (memory[0] == '/' && !strchr(memory, '\n')), "memory path '%s'", memory);
}

static void fuzz_pids(const char *s) {
        _cleanup_free_ pid_t *pids = NULL;
        int n = cgroup_parse_pids(s, &pids);

        if (n < 0)
                return;
        fuzz_check((n == 0) == !pids, "%d pids, array %p", n, (void *) pids);
        for (int i = 0; i < n; i++)
                fuzz_check(pids[i] > 0, "pid %d", (int) pids[i]);
}

static void fuzz_keyed(const char *s) {
        static const char *const keys[] = { "usage_usec", "oom_kill", "total_rss", "max", "" };
        CgroupMemoryEvents events;
        uint64_t v, anon, file;
        unsigned avg10;
        usec_t total;

        (void) cgroup_parse_u64(s, &v);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                (void) cgroup_parse_keyed(s, keys[i], &v);
        (void) cgroup_parse_cpu_stat(s, &v);
        (void) cgroup_parse_memory_stat(s, false, &anon, &file);
        (void) cgroup_parse_memory_stat(s, true, &anon, &file);
        (void) cgroup_parse_memory_events(s, &events);
        if (cgroup_parse_pressure(s, "some", &avg10, &total) >= 0)
                fuzz_check(avg10 <= 10000, "some avg10 %u", avg10);
        if (cgroup_parse_pressure(s, "full", &avg10, &total) >= 0)
                fuzz_check(avg10 <= 10000, "full avg10 %u", avg10);
        (void) cgroup_controllers_contain(s, "memory");
        (void) cgroup_controllers_contain(s, "");
}

static void fuzz_smaps(const char *s) {
        ProcSmapsRollup m;

        if (proc_parse_smaps_rollup(s, &m) < 0)
                return;
        fuzz_check(m.pss % 1024 == 0, "Pss %" PRIu64 " is not whole kB", m.pss);
}

/* The header's promise: the exact number of whole microseconds, or UINT64_MAX when that does not fit;
 * 0 for an unknown rate. Checked by what "the floor of ticks * 10^6 / hz" means, in 128 bits, rather than
 * by computing it again. */
static void fuzz_ticks(FuzzInput *in) {
        uint64_t ticks = fuzz_take_u64(in), hz = fuzz_take_u64(in);
        unsigned __int128 scaled = (unsigned __int128) ticks * USEC_PER_SEC;
        usec_t got = proc_ticks_to_usec(ticks, hz);

        if (hz == 0)
                fuzz_check(got == 0, "%" PRIu64 " ticks at 0 Hz: %" PRIu64 " us", ticks, got);
        else if (got < UINT64_MAX)
                fuzz_check((unsigned __int128) got * hz <= scaled &&
                                   ((unsigned __int128) got + 1) * hz > scaled,
                           "%" PRIu64 " ticks at %" PRIu64 " Hz: %" PRIu64 " us is not the quotient", ticks,
                           hz, got);
        else
                fuzz_check((unsigned __int128) UINT64_MAX * hz <= scaled,
                           "%" PRIu64 " ticks at %" PRIu64 " Hz: saturated, the quotient fits", ticks, hz);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = fuzz_strndup(data, size);
        FuzzInput in = { data, size };

        fuzz_stat(s, data, size);
        fuzz_self(s);
        fuzz_pids(s);
        fuzz_keyed(s);
        fuzz_smaps(s);
        fuzz_ticks(&in);
        return 0;
}
