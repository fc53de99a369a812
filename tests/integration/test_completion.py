# SPDX-License-Identifier: MIT
"""The bash completion (contrib/completion/corral.bash) in a real bash against this build's corral: the
completion function called with COMP_WORDS/COMP_CWORD as bash sets them, for verbs, options (which must be
exactly those of `corral --help`), option values, files, the worker command after --, and the names of
running instances (from `corral list`); and `cmake --install` puts it where bash-completion loads it."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import corral_harness as h

ROOT = os.path.normpath(os.path.join(h.HERE, "..", ".."))
COMPLETION = os.path.join(ROOT, "contrib", "completion", "corral.bash")
VERBS = {"check", "list", "status", "reload", "recycle", "drain", "undrain", "upgrade"}
NOBODY = 65534

# Sources the script, sets the words (the arguments after the script's own path) as bash would, calls the
# completion function and prints what it offers.
CALL = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; '
        'COMP_POINT=${#COMP_LINE}; _corral; printf "%s\\n" "${COMPREPLY[@]}"')


class Completion(h.CorralTestCase):
    def complete(self, *words, corral=None, script=COMPLETION, env=None, user=None, cwd=None):
        """The set of words the completion offers for WORDS, the last being the one under the cursor."""
        prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
        p = subprocess.run(prefix + ["bash", "--norc", "--noprofile", "-c", CALL, "bash", script,
                                     corral or h.corral_bin(), *words],
                           capture_output=True, text=True, env=h.clean_env(env), cwd=cwd or self.tmp,
                           timeout=h.scaled(30))
        self.assertEqual((p.returncode, p.stderr), (0, ""), f"completing {words}")
        return {w for w in p.stdout.splitlines() if w}

    def help_options(self, *verb):
        """The long options as `corral [VERB] --help` lists them, read here independently of the script."""
        out = subprocess.run([h.corral_bin(), *verb, "--help"], capture_output=True, text=True, timeout=10).stdout
        if not verb or verb == ("check",):
            return set(re.findall(r"^ {1,6}(?:-[A-Za-z] +)?(--[a-z][a-z0-9-]*)", out, re.M))
        return set(re.findall(r"--[a-z][a-z0-9-]*", out))

    def test_verbs(self):
        self.assertEqual(self.complete(""), VERBS)
        self.assertEqual(self.complete("re"), {"recycle", "reload"})
        self.assertEqual(self.complete("status", "re"), set())  # NAME: none running under this XDG dir
        # By name on PATH, as users type it; a command that is not there offers nothing, quietly.
        path = os.path.dirname(h.corral_bin()) + ":" + os.environ.get("PATH", "/usr/bin:/bin")
        self.assertEqual(self.complete("ch", corral="corral", env={"PATH": path}), {"check"})
        self.assertEqual(self.complete("", corral=os.path.join(self.tmp, "corral")), set())

    def test_options_are_corral_help_s(self):
        every = self.help_options()
        self.assertTrue({"--config", "--listen", "--count", "--ready-mode", "--log-level", "--cgroup-root",
                         "--control", "--name", "--status-listen", "--exec-start", "--help"} <= every, every)
        self.assertEqual(self.complete("--"), every | {"--"})
        self.assertEqual(self.complete("check", "--st"), {"--stop-signal", "--stop-timeout", "--status-listen"})
        self.assertEqual(self.complete("-"), every | {"--"})
        # An option's value is not a word of its own: the next one is an option again.
        self.assertEqual(self.complete("--count", "2", "--ready-m"), {"--ready-mode"})
        self.assertEqual(self.complete("--count", "=", "2", "--ready-m"), {"--ready-mode"})
        # Client verbs: what their usage line and "Every one takes" name.
        self.assertEqual(self.complete("status", "--"), {"--json", "--control", "--timeout", "--help"})
        for verb in ("reload", "drain"):
            self.assertEqual(self.complete(verb, "--"), {"--wait", "--control", "--timeout", "--help"}, verb)
        for verb in ("list", "recycle", "undrain"):
            self.assertEqual(self.complete(verb, "--"), {"--control", "--timeout", "--help"}, verb)
        self.assertEqual(self.help_options("status"), {"--json", "--wait", "--control", "--timeout", "--help"})

    def test_option_values(self):
        self.assertEqual(self.complete("--ready-mode", ""), {"notify", "exec", "delay"})
        self.assertEqual(self.complete("check", "--ready-mode", "n"), {"notify"})
        self.assertEqual(self.complete("--ready-mode", "=", ""), {"notify", "exec", "delay"})  # --ready-mode=
        self.assertEqual(self.complete("--ready-mode", "=", "e"), {"exec"})
        self.assertEqual(self.complete("--ready-mode=e"), {"--ready-mode=exec"})  # = not a word break
        self.assertEqual(self.complete("--log-level", ""), {"debug", "info", "notice", "warning", "err"})
        self.assertEqual(self.complete("--log-format", ""), {"text", "json"})
        self.assertEqual(self.complete("--count", ""), {"auto"})
        self.assertEqual(self.complete("-n", "a"), {"auto"})
        self.assertEqual(self.complete("--stop-signal", "SIGTE"), {"SIGTERM"})
        self.assertEqual(self.complete("--relay-signals", "no"), {"none"})
        for option in ("--listen", "--status-listen", "--ready-timeout", "--name"):
            self.assertEqual(self.complete(option, ""), set(), option)
        self.assertEqual(self.complete("status", "--timeout", ""), set())

    def test_files_directories_and_the_worker_command(self):
        d = os.path.join(self.tmp, "conf")
        os.makedirs(os.path.join(d, "sub"))
        for name in ("a.conf", "b.ini"):
            open(os.path.join(d, name), "w").close()
        files = {f"{d}/a.conf", f"{d}/b.ini", f"{d}/sub"}
        self.assertEqual(self.complete("--config", f"{d}/"), files)
        self.assertEqual(self.complete("-c", f"{d}/a"), {f"{d}/a.conf"})
        self.assertEqual(self.complete("check", "--config", f"{d}/"), files)
        self.assertEqual(self.complete("--pid-file", f"{d}/b"), {f"{d}/b.ini"})
        self.assertEqual(self.complete("--cgroup-root", f"{d}/"), {f"{d}/sub"})
        self.assertEqual(self.complete("--cgroup-root", "", cwd=d), {"none", "sub"})
        self.assertEqual(self.complete("status", "--control", f"{d}/a"), {f"{d}/a.conf"})
        # After --: a command (PATH), then its arguments (files); options are the worker's, not ours.
        path = os.path.dirname(h.worker_bin()) + ":" + os.environ.get("PATH", "/usr/bin:/bin")
        self.assertEqual(self.complete("--", "corral-test-w", env={"PATH": path}), {"corral-test-worker"})
        self.assertEqual(self.complete("--count", "2", "--", "corral-test-worker", f"{d}/a", env={"PATH": path}),
                         {f"{d}/a.conf"})
        self.assertEqual(self.complete("--", "corral-test-worker", "--", env={"PATH": path}), set())
        self.assertEqual(self.complete("--exec-start", "corral-test-w", env={"PATH": path}), {"corral-test-worker"})

    @unittest.skipUnless(os.geteuid() != 0 or shutil.which("setpriv"), "as root, needs setpriv to run as nobody")
    def test_running_instance_names(self):
        # As nobody (when root), so that the instances live in a temporary XDG_RUNTIME_DIR, not in /run.
        user = NOBODY if os.geteuid() == 0 else None
        xdg = tempfile.mkdtemp(prefix="xdg-", dir=self.tmp)
        os.chmod(self.tmp, 0o755)
        os.chmod(xdg, 0o700)
        if user is not None:
            os.chown(xdg, NOBODY, NOBODY)
        env = {"XDG_RUNTIME_DIR": xdg, "RUNTIME_DIRECTORY": ""}
        as_user = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
        names = [f"compl-{os.getpid()}-a", f"compl-{os.getpid()}-b"]
        for i, name in enumerate(names):
            self.start_corral(["--name", name, "--listen", f"127.0.0.1:{h.free_port()}", "--count", 1,
                               "--cgroup-root", "none", "--", h.worker_bin()], env=env, prefix=as_user,
                              name=f"corral-{i}")
        for name in names:
            h.wait_until(lambda: os.path.exists(f"{xdg}/corral/{name}/control"), 10)

        # What the script reads: `corral list`'s first column below its header.
        p = subprocess.run(as_user + [h.corral_bin(), "list"], capture_output=True, text=True,
                           env=h.clean_env(env), timeout=h.scaled(10))
        rows = p.stdout.splitlines()
        self.assertEqual(rows[0].split()[0], "NAME", p.stdout)
        self.assertEqual(sorted(r.split()[0] for r in rows[1:]), names, p.stdout + p.stderr)

        offer = lambda *words: self.complete(*words, env=env, user=user)  # noqa: E731
        for verb in ("status", "reload", "drain", "undrain", "upgrade"):
            self.assertEqual(offer(verb, ""), set(names), verb)
        self.assertEqual(offer("status", names[1][:-1]), set(names))
        self.assertEqual(offer("status", names[1]), {names[1]})
        self.assertEqual(offer("reload", "--wait", ""), set(names))
        self.assertEqual(offer("status", "--timeout", "2s", ""), set(names))
        self.assertEqual(offer("recycle", ""), set())  # SLOT first
        self.assertEqual(offer("recycle", "0", ""), set(names))
        self.assertEqual(offer("status", names[0], ""), set())  # one NAME at most
        self.assertEqual(offer("status", "--control", f"{xdg}/x", ""), set())  # --control instead of a NAME
        self.assertEqual(offer("list", ""), set())

    def test_cmake_install_puts_it_where_bash_completion_looks(self):
        build = os.path.dirname(h.corral_bin())
        cmake = os.environ.get("CORRAL_CMAKE") or shutil.which("cmake")
        self.assertTrue(cmake and os.path.exists(os.path.join(build, "CMakeCache.txt")),
                        f"needs cmake (CORRAL_CMAKE) and the build directory of {h.corral_bin()}")
        destdir = os.path.join(self.tmp, "destdir")
        prefix = os.path.join(self.tmp, "prefix")
        # DESTDIR as well, so that anything installed outside the prefix shows up here, not on the system.
        p = subprocess.run([cmake, "--install", build, "--prefix", prefix], capture_output=True, text=True,
                           env=h.clean_env({"DESTDIR": destdir}), timeout=h.scaled(120))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        installed = []
        for d, _, files in os.walk(destdir):
            installed += [os.path.join(d, f) for f in files]
        outside = [f for f in installed if not f.startswith(destdir + prefix + "/")]
        self.assertEqual(outside, [], "installed outside --prefix")
        want = subprocess.run(["pkg-config", f"--define-variable=prefix={prefix}", "--variable=completionsdir",
                               "bash-completion"], capture_output=True, text=True).stdout.strip()
        if not want.startswith(prefix + "/"):
            want = os.path.join(prefix, "share", "bash-completion", "completions")
        script = destdir + os.path.join(want, "corral")
        self.assertIn(script, installed)
        with open(script, "rb") as a, open(COMPLETION, "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertEqual(self.complete("dr", script=script), {"drain"})


if __name__ == "__main__":
    unittest.main()
