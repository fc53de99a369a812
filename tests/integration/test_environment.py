# SPDX-License-Identifier: MIT
"""Real command lines and the workers' surroundings: an ExecStart= of several KiB, on one line or over
indented continuation lines, runs as written; Environment= and EnvironmentFile= reach the workers and change
with a reload, and a bad environment file fails the reload and keeps the old generation; corral's own
variables cannot be set; WorkingDirectory= through a symbolic link follows a "repoint, then reload" deploy,
and a working directory gone by the time a worker is respawned is a start failure at stage 'chdir'."""

import http.client
import os
import shutil
import subprocess
import unittest

import corral_harness as h

WORKERS = 2


class Environment(h.CorralTestCase):
    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path + ".new", "w") as f:
            f.write(text)
        os.rename(path + ".new", path)
        return path

    def start_pool(self, config_text):
        self.port = h.free_port()
        self.control = os.path.join(self.tmp, "control")
        conf = self.write("corral.conf", config_text)
        c = self.start_corral(["--config", conf, "--listen", f"127.0.0.1:{self.port}", "--control", self.control])
        self.wait_generation(c, 1)
        return c

    def corralctl(self, *args):
        p = subprocess.run([h.corral_bin(), *args, "--control", self.control], capture_output=True, text=True,
                           timeout=h.scaled(60), env=h.clean_env())
        return p.returncode, p.stdout, p.stderr

    def wait_generation(self, corral, generation):
        """Waits until every slot answers from GENERATION."""
        def attempt():
            found = h.collect_workers(self.port, WORKERS, timeout=10, corral=corral)
            return all(a.generation == str(generation) for a in found.values())
        h.wait_until(attempt, h.scaled(30), interval=0.1, message=f"generation {generation} is not serving")

    def answers(self, corral, path):
        """PATH's answer from every slot, each asked until every slot answered."""
        found = h.collect_workers(self.port, WORKERS, path=path, corral=corral)
        return list(found.values())

    def long_command(self):
        """A command line of more than 4 KiB: /usr/bin/env with 60 assignments, one quoted with blanks,
        then the test worker. Returns (words, expected environment)."""
        expected = {f"CORRAL_T_{i:02d}": f"{i:02d}-" + "x" * 70 for i in range(60)}
        expected["CORRAL_T_QUOTED"] = "two words;still one"
        words = ["/usr/bin/env"] + [f"{k}={v}" for k, v in expected.items()] + [h.worker_bin(), "--drain-ms",
                                                                                 "2000"]
        return words, expected

    @staticmethod
    def quote(word):
        return f'"{word}"' if " " in word else word

    def check_long_command(self, corral, expected):
        for a in self.answers(corral, "/env"):
            env = a.env()
            for k, v in expected.items():
                self.assertEqual(env.get(k), v, k)
        for a in self.answers(corral, "/argv"):
            self.assertEqual(a.lines(), [h.worker_bin(), "--drain-ms", "2000"])

    def test_long_command_over_continuation_lines_runs(self):
        words, expected = self.long_command()
        lines = [" ".join(self.quote(w) for w in words[i:i + 3]) for i in range(0, len(words), 3)]
        body = "\n".join("\t" + l if n % 2 else "    " + l for n, l in enumerate(lines[1:]))
        text = (f"[Worker]\nExecStart={lines[0]} ; the program\n  # a comment among the lines\n{body}\n\n"
                f"Count={WORKERS}\n")
        self.assertGreater(len(text), 4096)
        self.assertGreater(len(lines), 10)
        c = self.start_pool(text)
        self.check_long_command(c, expected)

    def test_long_command_on_one_line_runs(self):
        words, expected = self.long_command()
        line = "ExecStart=" + " ".join(self.quote(w) for w in words)
        self.assertGreater(len(line), 4096)
        c = self.start_pool(f"[Worker]\n{line}\nCount={WORKERS}\n")
        self.check_long_command(c, expected)

    def test_environment_reaches_the_workers_and_changes_on_reload(self):
        env_file = self.write("app.env", "# settings\nFROM_FILE=one\n  QUOTED = \"a \\\"b\\\" c\"  \n"
                                         "; other comment\nOVERRIDDEN='from the file'\n")
        missing = os.path.join(self.tmp, "missing.env")

        def config(extra):
            return (f"[Worker]\nExecStart={h.worker_bin()}\nCount={WORKERS}\n"
                    f"Environment=PLAIN=1 \"SPACED=two words\"\n  OVERRIDDEN=by-environment\n{extra}"
                    f"EnvironmentFile={env_file}\nEnvironmentFile=-{missing}\n")

        c = self.start_pool(config(""))
        for a in self.answers(c, "/env"):
            env = a.env()
            self.assertEqual(env["PLAIN"], "1")
            self.assertEqual(env["SPACED"], "two words")
            self.assertEqual(env["FROM_FILE"], "one")
            self.assertEqual(env["QUOTED"], 'a "b" c')
            self.assertEqual(env["OVERRIDDEN"], "from the file")
            self.assertEqual(env["WORKER_GENERATION"], "1")

        # A reload reads the file again, and the config's own assignments.
        self.write("app.env", "FROM_FILE=two\n")
        self.write("corral.conf", config("Environment=\nEnvironment=PLAIN=2\n"))
        rc, out, err = self.corralctl("reload", "--wait")
        self.assertEqual(rc, 0, err)
        self.wait_generation(c, 2)
        for a in self.answers(c, "/env"):
            env = a.env()
            self.assertEqual((env["PLAIN"], env["FROM_FILE"]), ("2", "two"))
            self.assertNotIn("SPACED", env)
            self.assertNotIn("OVERRIDDEN", env)

        # A file that sets corral's own variable fails the reload; generation 2 keeps serving.
        self.write("app.env", "FROM_FILE=three\nLISTEN_FDS=7\n")
        rc, out, err = self.corralctl("reload", "--wait")
        self.assertNotEqual(rc, 0)
        c.wait_for_line(r"EnvironmentFile=.*app\.env:2: LISTEN_FDS is set by corral", timeout=h.scaled(5))
        for a in self.answers(c, "/env"):
            self.assertEqual((a.generation, a.env()["FROM_FILE"]), ("2", "two"))

    def test_corral_variables_cannot_be_set(self):
        conf = self.write("corral.conf", f"[Worker]\nExecStart={h.worker_bin()}\n"
                                         "Environment=A=1\n  WORKER_INDEX=9\n")
        for args, message in (
                (["--config", conf], f"{conf}:3: Environment=: invalid value 'A=1 WORKER_INDEX=9': WORKER_INDEX "
                                     "is set by corral"),
                (["--environment", "NOTIFY_SOCKET=x", "--", h.worker_bin()],
                 "--environment: invalid value 'NOTIFY_SOCKET=x': NOTIFY_SOCKET is set by corral")):
            p = subprocess.run([h.corral_bin(), *args, "--listen", "127.0.0.1:0"], capture_output=True, text=True,
                               timeout=h.scaled(10), env=h.clean_env())
            self.assertEqual(p.returncode, 78, p.stderr)
            self.assertIn(message, p.stderr)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)

    def test_working_directory_symlink_follows_a_deploy(self):
        releases = [os.path.join(self.tmp, "releases", r) for r in ("r1", "r2")]
        for r in releases:
            os.makedirs(os.path.join(r, "bin"))
            shutil.copy(h.worker_bin(), os.path.join(r, "bin", "app"))
        current = os.path.join(self.tmp, "current")
        os.symlink(releases[0], current)
        # The program is relative: it is found in the release the generation starts in.
        c = self.start_pool(f"[Worker]\nExecStart=bin/app\nWorkingDirectory={current}\nCount={WORKERS}\n")
        for a in self.answers(c, "/cwd"):
            self.assertEqual(a.lines(), [releases[0]])
        for a in self.answers(c, "/argv"):
            self.assertEqual(a.lines(), ["bin/app"])

        # The deploy: repoint the link atomically, then reload.
        os.symlink(releases[1], current + ".new")
        os.rename(current + ".new", current)
        rc, out, err = self.corralctl("reload", "--wait")
        self.assertEqual(rc, 0, err)
        self.wait_generation(c, 2)
        for a in self.answers(c, "/cwd"):
            self.assertEqual((a.generation, a.lines()), ("2", [releases[1]]))
        pids = {a.pid for a in self.answers(c, "/")}
        for pid in pids:
            self.assertEqual(os.readlink(f"/proc/{pid}/exe"), os.path.join(releases[1], "bin", "app"))

    def test_missing_working_directory(self):
        # At startup: a configuration error, exit 78.
        gone = os.path.join(self.tmp, "gone")
        p = subprocess.run([h.corral_bin(), "--working-directory", gone, "--listen", "127.0.0.1:0", "--",
                            h.worker_bin()], capture_output=True, text=True, timeout=h.scaled(10), env=h.clean_env())
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn(f"WorkingDirectory=: cannot use '{gone}': No such file or directory", p.stderr)

        # Removed under a running generation: the respawn fails at stage 'chdir', and corral goes on.
        work = os.path.join(self.tmp, "work")
        os.mkdir(work)
        c = self.start_pool(f"[Worker]\nExecStart={h.worker_bin()}\nWorkingDirectory={work}\nCount={WORKERS}\n"
                            "[Restart]\nRestartSec=50ms\n")
        os.rmdir(work)
        try:
            h.http_get(self.port, "/crash", timeout=2)
        except (OSError, http.client.HTTPException):
            pass
        c.wait_for_line(r"failed at stage 'chdir': No such file or directory", timeout=h.scaled(10))
        os.mkdir(work)
        self.wait_generation(c, 1)
        self.assertTrue(c.running())


if __name__ == "__main__":
    unittest.main()
