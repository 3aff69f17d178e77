"""doc_blocks: how the doc-command test reads a page and compares outputs. A matcher that
matched everything would let every page rot, so its refusals are tested too."""
import unittest

import doc_blocks

PAGE = """Intro.

```sh
export A=1   # a comment
# only a comment
echo one \\
  two
```

<!-- doc-test: background wait-for http://127.0.0.1:4646/healthz -->
```sh
mentat-server --dev
```

```console
$ mt get services
NAME    READY   AGE
hello   1/1     3s
$ curl -s http://x/ || echo "exit status $?"
exit status 7
```

<!-- doc-test: skip needs KVM -->
```console
$ mt run vm.yaml
```

```yaml
name: not-run
```

<!-- doc-test: file manifests/web.yaml -->
```yaml
name: web
```
"""


class BlocksTest(unittest.TestCase):
    def test_reads_blocks_commands_transcripts_and_directives(self):
        b = doc_blocks.blocks(PAGE)
        self.assertEqual([x.lang for x in b], ["sh", "sh", "console", "console", "yaml", "yaml"])
        self.assertEqual(b[0].commands(), ["export A=1   # a comment", "echo one    two"])
        self.assertIsNone(b[0].directive)
        self.assertEqual(b[1].directive, "background wait-for http://127.0.0.1:4646/healthz")
        self.assertEqual(b[2].transcript(), [
            ("mt get services", ["NAME    READY   AGE", "hello   1/1     3s"]),
            ('curl -s http://x/ || echo "exit status $?"', ["exit status 7"])])
        self.assertEqual(b[3].directive, "skip needs KVM")
        self.assertIsNone(b[4].directive)
        self.assertEqual(b[5].directive, "file manifests/web.yaml")
        self.assertEqual(b[5].lines, ["name: web"])
        self.assertEqual(b[2].line_no, 15)


class MatchTest(unittest.TestCase):
    def test_volatile_values_match_their_kind_only(self):
        m = doc_blocks.line_matches
        self.assertTrue(m("hello   exec   1/1   Running   3s", "hello exec 1/1 Running 12m5s"))
        self.assertTrue(m("hello-0   vm   Running   0   3s   22037", "hello-0 vm Running 0 1s 9"
                          "12"))
        self.assertTrue(m('  resourceVersion: "14"', '  resourceVersion: "1402"'))
        self.assertTrue(m("  uid: 830d328e-503a-424a-9768-ee43cf011aeb",
                          "  uid: 0e4b0e0a-1111-4222-8333-444455556666"))
        self.assertTrue(m('  creationTimestamp: "2026-11-22T06:21:24Z"',
                          '  creationTimestamp: "2026-12-06T15:01:02Z"'))
        # What must not match: readiness, states, restarts, names, extra columns.
        self.assertFalse(m("hello   exec   1/1   Running   3s", "hello exec 0/1 Running 3s"))
        self.assertFalse(m("hello   exec   1/1   Running   3s", "hello exec 1/1 Starting 3s"))
        self.assertFalse(m("hello-0   Running   0   3s", "hello-0 Running 1 3s"))
        self.assertFalse(m("hello   3s", "hello 3s extra"))
        self.assertFalse(m("AGE 3s", "AGE 1402"))  # a duration is not a number
        self.assertTrue(m('  "token": "mt_' + "0" * 64 + '"', '  "token": "mt_' + "ab" * 32 + '"'))
        self.assertFalse(m('  "token": "mt_' + "0" * 64 + '"', '  "token": "hunter2"'))
        self.assertTrue(m("Warning   FailedScheduling   1s (x51 over 2m)   service-controller",
                          "Warning FailedScheduling 4s (x7 over 15s) service-controller"))
        self.assertTrue(m("error: cannot reach it: could not connect ...",
                          "error: cannot reach it: could not connect (whatever follows)"))

    def test_spaced_durations_and_paths_by_component(self):
        m = doc_blocks.line_matches
        self.assertTrue(m("built static: BusyBox v1.35.0, 1.9 MiB in 29 ms",
                          "built static: BusyBox v1.35.0, 1.9 MiB in 131 ms"))
        self.assertFalse(m("built static: BusyBox v1.35.0, 1.9 MiB in 29 ms",
                           "built static: BusyBox v1.35.0, 2.1 MiB in 29 ms"))  # a size is not
        self.assertTrue(m("64.2 MiB in 481 ms", "64.2 MiB in 1.5 s"))
        self.assertFalse(m("64.2 MiB in 481 ms", "64.2 MiB in 1.5 MiB"))
        self.assertTrue(m("rootfs: /tmp/bases/static/build-df286df74441-hotzlgibjz/rootfs",
                          "rootfs: /tmp/bases/static/build-df286df74441-hou0a1b2c3/rootfs"))
        self.assertFalse(m("rootfs: /tmp/bases/static/build-df286df74441-hotzlgibjz/rootfs",
                           "rootfs: /tmp/bases/python312/build-7fda51d0a647-hotzlg5wgj/rootfs"))
        self.assertTrue(m("build-df286df74441-hotzlgibjz", "build-df286df74441-hou0a1b2c3"))
        self.assertTrue(m('  "digest": "sha256:' + "a" * 64 + '",', '  "digest": "sha256:' + "b" * 64 + '",'))
        self.assertTrue(m("ls /proc/22037/cgroup", "ls /proc/981/cgroup"))
        self.assertFalse(m("ls /proc/22037/cgroup", "ls /proc/self/cgroup"))
        self.assertTrue(m('INFO: 127.0.0.1:35604 - "GET /', 'INFO: 127.0.0.1:4711 - "GET /'))
        self.assertFalse(m('INFO: 127.0.0.1:35604 - "GET /', 'INFO: 10.0.0.1:4711 - "GET /'))

    def test_failures_shown_by_their_words_unless_the_status_is_echoed(self):
        f = doc_blocks.expects_failure
        self.assertTrue(f("mt get services nope", ["error: Service \"nope\" not found"]))
        self.assertTrue(f("mt get services", ["unauthorized: a bearer token is required"]))
        self.assertTrue(f("mt delete service web", ["forbidden: token \"reader\" ..."]))
        self.assertFalse(f("mt get services nope; echo $?", ["error: x", "1"]))
        self.assertFalse(f('mt diff -f bad.yaml; echo "exit $?"', ["error: x", "exit 2"]))
        self.assertFalse(f('curl -s http://x/ || echo "exit status $?"', ["exit status 7"]))
        self.assertFalse(f("mt get services", ["NAME   DRIVER"]))
        self.assertTrue(f("mt run x.yaml", ["service/x created", "...", "error: not ready: 1"]))
        self.assertFalse(f("mt logs x", ["stderr: error: DATABASE_URL is not set"]))

    def test_ellipsis_tokens_within_a_line(self):
        m = doc_blocks.line_matches
        self.assertTrue(m("service/x ... x-0 is crash-looping (3 restarts): exited",
                          "service/x (1/1 ready, Running): x-0 is crash-looping (3 restarts): exited"))
        self.assertTrue(m("a ... b", "a b"))
        self.assertFalse(m("service/x ... x-0 is crash-looping", "service/x (0/1 ready): x-0 failed"))
        self.assertFalse(m("a ... b", "a c"))

    def test_lines_in_order_with_ellipsis_lines(self):
        om = doc_blocks.output_matches
        self.assertTrue(om(["a", "...", "d"], "a\nb\nc\nd\n"))
        self.assertTrue(om(["a", "...", "d"], "a\nd\n"))
        self.assertFalse(om(["a", "d"], "a\nb\nd\n"))
        self.assertFalse(om(["a", "b"], "a\n"))
        self.assertTrue(om([], ""))
        self.assertFalse(om([], "unexpected\n"))


if __name__ == "__main__":
    unittest.main()
