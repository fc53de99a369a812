/* SPDX-License-Identifier: MIT */
/* Tests for cgroup-parse.c: each parser on file contents as the kernel writes them (taken from real hosts),
 * edge cases, and malformed input. */

#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>

#include "cgroup-parse.h"

TestSuite(cgroup_parse, .timeout = 10);

Test(cgroup_parse, parse_self_v2) {
        _cleanup_free_ char *u = NULL, *m = NULL;

        cr_assert_eq(cgroup_parse_self("0::/system.slice/corral.service\n", &u, &m), 0);
        cr_assert_str_eq(u, "/system.slice/corral.service");
        cr_assert_null(m);
}

Test(cgroup_parse, parse_self_v1) {
        _cleanup_free_ char *u = NULL, *m = NULL;

        cr_assert_eq(cgroup_parse_self("12:pids:/a\n5:cpuacct,memory:/mem/x\n1:name=systemd:/s\n", &u, &m), 0);
        cr_assert_null(u);
        cr_assert_str_eq(m, "/mem/x");
}

Test(cgroup_parse, parse_self_hybrid) {
        _cleanup_free_ char *u = NULL, *m = NULL, *u2 = NULL, *m2 = NULL;
        const char *s = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/336bcd7a\n2:cpuacct:/\n"
                        "1:cpu:/\n0::/\n";

        cr_assert_eq(cgroup_parse_self(s, &u, &m), 0);
        cr_assert_str_eq(u, "/");
        cr_assert_str_eq(m, "/process_api/336bcd7a");

        /* A path may contain ':'; "memoryx" is not "memory"; no trailing newline. */
        cr_assert_eq(cgroup_parse_self("3:memoryx:/no\n4:memory:/a:b\n0::/c:d", &u2, &m2), 0);
        cr_assert_str_eq(u2, "/c:d");
        cr_assert_str_eq(m2, "/a:b");
}

Test(cgroup_parse, parse_self_malformed) {
        char *u = (char *) 1, *m = (char *) 1;

        cr_assert_eq(cgroup_parse_self("0:/x\n", &u, &m), -EINVAL);
        cr_assert_eq(cgroup_parse_self("garbage\n", &u, &m), -EINVAL);
        cr_assert_eq(cgroup_parse_self("0::relative\n", &u, &m), -EINVAL);
        cr_assert_eq(u, (char *) 1, "outputs written on failure");
}

Test(cgroup_parse, parse_u64_and_keyed) {
        uint64_t v;

        cr_assert_eq(cgroup_parse_u64("123456\n", &v), 0);
        cr_assert_eq(v, 123456);
        cr_assert_eq(cgroup_parse_u64("max\n", &v), 0);
        cr_assert_eq(v, UINT64_MAX);
        cr_assert_eq(cgroup_parse_u64("18446744073709551615", &v), 0);
        cr_assert_eq(cgroup_parse_u64("18446744073709551616", &v), -ERANGE);
        cr_assert_eq(cgroup_parse_u64("", &v), -EINVAL);
        cr_assert_eq(cgroup_parse_u64("-1\n", &v), -EINVAL);
        cr_assert_eq(cgroup_parse_u64("1\n2\n", &v), -EINVAL);

        cr_assert_eq(cgroup_parse_keyed("populated 1\nfrozen 0\n", "frozen", &v), 0);
        cr_assert_eq(v, 0);
        cr_assert_eq(cgroup_parse_keyed("populated 1\n", "pop", &v), -ENOENT);
        cr_assert_eq(cgroup_parse_keyed("a 1x\n", "a", &v), -EINVAL);
}

Test(cgroup_parse, parse_cpu_stat) {
        usec_t u;

        cr_assert_eq(cgroup_parse_cpu_stat("usage_usec 8821093\nuser_usec 6002034\nsystem_usec 2819059\n"
                                           "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
                                           &u),
                     0);
        cr_assert_eq(u, 8821093);
        /* user_usec must not be taken for usage_usec by a prefix match. */
        cr_assert_eq(cgroup_parse_cpu_stat("user_usec 5\n", &u), -ENOENT);
}

Test(cgroup_parse, parse_memory_stat) {
        uint64_t anon, file;

        cr_assert_eq(cgroup_parse_memory_stat("anon 1052672\nfile 4096\nkernel 0\nanon_thp 0\nfile_mapped 0\n",
                                              false, &anon, &file),
                     0);
        cr_assert_eq(anon, 1052672);
        cr_assert_eq(file, 4096);

        cr_assert_eq(cgroup_parse_memory_stat("cache 8192\nrss 65536\nrss_huge 0\n", true, &anon, &file), 0);
        cr_assert_eq(anon, 65536);
        cr_assert_eq(file, 8192);
        cr_assert_eq(cgroup_parse_memory_stat("cache 1\nrss 2\ntotal_cache 10\ntotal_rss 20\n", true, &anon, &file),
                     0);
        cr_assert_eq(anon, 20);
        cr_assert_eq(file, 10);

        cr_assert_eq(cgroup_parse_memory_stat("cache 1\n", true, &anon, &file), -ENOENT);
        cr_assert_eq(cgroup_parse_memory_stat("anon 1\n", false, &anon, &file), -ENOENT);
}

Test(cgroup_parse, parse_memory_events) {
        CgroupMemoryEvents e;

        cr_assert_eq(cgroup_parse_memory_events("low 0\nhigh 17\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n", &e), 0);
        cr_assert_eq(e.high, 17);
        cr_assert_eq(e.max, 3);
        cr_assert_eq(e.oom_kill, 1);
        cr_assert_eq(cgroup_parse_memory_events("low 0\nhigh 1\nmax 1\noom 0\n", &e), -ENOENT);
}

Test(cgroup_parse, parse_pressure) {
        const char *s = "some avg10=12.34 avg60=5.00 avg300=0.10 total=987654\n"
                        "full avg10=100.00 avg60=0.00 avg300=0.00 total=12\n";
        unsigned avg;
        usec_t total;

        cr_assert_eq(cgroup_parse_pressure(s, "some", &avg, &total), 0);
        cr_assert_eq(avg, 1234);
        cr_assert_eq(total, 987654);
        cr_assert_eq(cgroup_parse_pressure(s, "full", &avg, &total), 0);
        cr_assert_eq(avg, 10000);
        cr_assert_eq(total, 12);
        cr_assert_eq(cgroup_parse_pressure("some avg10=0.5 total=1\n", "some", &avg, &total), 0);
        cr_assert_eq(avg, 50);

        cr_assert_eq(cgroup_parse_pressure("some avg60=0.00 total=1\n", "some", &avg, &total), -EINVAL);
        cr_assert_eq(cgroup_parse_pressure("some avg10=1.234 total=1\n", "some", &avg, &total), -EINVAL);
        cr_assert_eq(cgroup_parse_pressure("some avg10=101.00 total=1\n", "some", &avg, &total), -ERANGE);
        cr_assert_eq(cgroup_parse_pressure("some avg10=1.00 total=1\n", "full", &avg, &total), -ENOENT);
}

Test(cgroup_parse, parse_pids_and_controllers) {
        _cleanup_free_ pid_t *p = NULL, *none = NULL, *bad = NULL;

        cr_assert_eq(cgroup_parse_pids("12\n345\n6\n", &p), 3);
        cr_assert_eq(p[0], 12);
        cr_assert_eq(p[1], 345);
        cr_assert_eq(p[2], 6);
        cr_assert_eq(cgroup_parse_pids("", &none), 0);
        cr_assert_null(none);
        cr_assert_eq(cgroup_parse_pids("1 x\n", &bad), -EINVAL);
        cr_assert_eq(cgroup_parse_pids("0\n", &bad), -ERANGE);

        cr_assert(cgroup_controllers_contain("cpuset cpu io memory pids\n", "memory"));
        cr_assert(cgroup_controllers_contain("cpuset cpu io memory pids\n", "cpu"));
        cr_assert(!cgroup_controllers_contain("cpuset io\n", "cpu"));
        cr_assert(!cgroup_controllers_contain("", "cpu"));
}

Test(cgroup_parse, parse_smaps_rollup) {
        const char *s = "55d0c8a00000-7ffcbd5f1000 ---p 00000000 00:00 0                          [rollup]\n"
                        "Rss:                4352 kB\n"
                        "Pss:                1234 kB\n"
                        "Pss_Dirty:           700 kB\n"
                        "Pss_Anon:            600 kB\n"
                        "Pss_File:            634 kB\n"
                        "Pss_Shmem:             0 kB\n"
                        "Shared_Clean:       3200 kB\n";
        ProcSmapsRollup m;

        cr_assert_eq(proc_parse_smaps_rollup(s, &m), 0);
        cr_assert_eq(m.pss, 1234 * 1024);
        cr_assert(m.has_pss_anon && m.has_pss_file);
        cr_assert_eq(m.pss_anon, 600 * 1024);
        cr_assert_eq(m.pss_file, 634 * 1024);

        cr_assert_eq(proc_parse_smaps_rollup("Rss: 4 kB\nPss: 2 kB\n", &m), 0);
        cr_assert_eq(m.pss, 2048);
        cr_assert(!m.has_pss_anon && !m.has_pss_file);

        /* A zombie or kernel thread: empty. */
        cr_assert_eq(proc_parse_smaps_rollup("", &m), -ENOENT);
        cr_assert_eq(proc_parse_smaps_rollup("Pss: 12 MB\n", &m), -EINVAL);
}

Test(cgroup_parse, parse_proc_stat) {
        const char *s = "4711 (we(ird) ) (name) S 1 4711 4711 0 -1 4194560 1000 0 0 0 250 75 3 4 20 0 1 0 "
                        "123 4096 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        _cleanup_free_ char *self = NULL;
        ProcStat st;
        size_t n = 0;
        FILE *f;

        cr_assert_eq(proc_parse_stat(s, &st), 0);
        cr_assert_eq(st.state, 'S');
        cr_assert_eq(st.ppid, 1);
        cr_assert_eq(st.session, 4711);
        cr_assert_eq(st.utime, 250);
        cr_assert_eq(st.stime, 75);
        cr_assert_eq(st.cutime, 3);
        cr_assert_eq(st.cstime, 4);
        cr_assert_eq(st.rss_pages, 100);
        /* priority and nice may be negative (real-time, niced). */
        cr_assert_eq(proc_parse_stat("1 (x) S 0 1 1 0 -1 0 0 0 0 0 1 2 3 4 -2 -20 1 0 5 4096 7\n", &st), 0);
        cr_assert_eq(st.rss_pages, 7);

        cr_assert_eq(proc_parse_stat("1 (init S 0 1\n", &st), -EINVAL);
        cr_assert_eq(proc_parse_stat("1 (x) S 0 1 1 0 -1 0 0 0 0 0 x 0 0 0\n", &st), -EINVAL);
        cr_assert_eq(proc_parse_stat("1 (x) S 0 1 1\n", &st), -EINVAL);

        /* The real thing. */
        f = fopen("/proc/self/stat", "re");
        cr_assert_not_null(f);
        cr_assert_gt(getline(&self, &n, f), 0);
        fclose(f);
        cr_assert_eq(proc_parse_stat(self, &st), 0);
        cr_assert_eq(st.ppid, getppid());
        cr_assert_eq(st.session, getsid(0));
        cr_assert_eq(st.state, 'R');
}

Test(cgroup_parse, ticks_to_usec) {
        cr_assert_eq(proc_ticks_to_usec(0, 100), 0);
        cr_assert_eq(proc_ticks_to_usec(150, 100), 1500000);
        cr_assert_eq(proc_ticks_to_usec(1, 1024), 976);
        cr_assert_eq(proc_ticks_to_usec(UINT64_MAX, 100), UINT64_MAX);
}

/* Found by tests/fuzz's cgroup-parse target: results just below UINT64_MAX saturated up to a second
 * early. */
Test(cgroup_parse, ticks_to_usec_exact_up_to_the_limit) {
        cr_assert_eq(proc_ticks_to_usec(UINT64_C(18446744073709), 1), UINT64_C(18446744073709000000));
        cr_assert_eq(proc_ticks_to_usec(UINT64_C(1844674407370955), 100), UINT64_C(18446744073709550000));
        cr_assert_eq(proc_ticks_to_usec(UINT64_C(1844674407370956), 100), UINT64_MAX);
}

/* Found by the same target: at rates above about 1.8e13 Hz the sub-second part overflowed. */
Test(cgroup_parse, ticks_to_usec_any_rate) {
        const uint64_t ticks = UINT64_C(7142836988087201891), hz = UINT64_C(7308533433169376624);

        cr_assert_eq(proc_ticks_to_usec(ticks, hz), 977328);
        cr_assert_eq(proc_ticks_to_usec(UINT64_MAX, UINT64_MAX), USEC_PER_SEC);
        cr_assert_eq(proc_ticks_to_usec(UINT64_MAX / 2, UINT64_MAX), USEC_PER_SEC / 2 - 1);
        cr_assert_eq(proc_ticks_to_usec(5, 0), 0);
}
