"""The slow S3 as a client sees it: S3 semantics of the server, latency, bandwidth, drops, and
the relay. Each test starts `python -m tools.slow_s3` as a process, as the benchmark does.

    python -m unittest discover -s tools/slow_s3/tests -t .
"""

import http.client
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BODY = bytes(range(256)) * 8192  # 2 MiB


class Endpoint:
    def __init__(self, *args):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.slow_s3", "--listen", "127.0.0.1:0", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.port = int(self.process.stdout.readline())

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def get(self, path, headers=None, method="GET"):
        conn = self.connection()
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response, body

    def stop(self):
        self.process.terminate()
        _, err = self.process.communicate(timeout=10)
        return err


class ServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.TemporaryDirectory()
        os.makedirs(os.path.join(cls.root.name, "bucket", "dir"))
        with open(os.path.join(cls.root.name, "bucket", "dir", "a b.bin"), "wb") as f:
            f.write(BODY)
        cls.endpoint = Endpoint("--root", cls.root.name)

    @classmethod
    def tearDownClass(cls):
        cls.endpoint.stop()
        cls.root.cleanup()

    def test_get_head_and_ranges(self):
        response, body = self.endpoint.get("/bucket/dir/a%20b.bin?x-id=GetObject")
        self.assertEqual((response.status, body), (200, BODY))
        etag, version = response.getheader("ETag"), response.getheader("x-amz-version-id")
        self.assertRegex(etag, r'^"[0-9a-f]{32}"$')
        self.assertTrue(version and response.getheader("Last-Modified"))

        response, body = self.endpoint.get("/bucket/dir/a%20b.bin", method="HEAD")
        self.assertEqual((response.status, body, response.getheader("Content-Length")), (200, b"", str(len(BODY))))

        for header, start, end in [("bytes=10-19", 10, 19), ("bytes=100-", 100, len(BODY) - 1), ("bytes=-5", len(BODY) - 5, len(BODY) - 1), ("bytes=0-99999999", 0, len(BODY) - 1)]:
            response, body = self.endpoint.get("/bucket/dir/a%20b.bin", {"Range": header})
            self.assertEqual(response.status, 206, header)
            self.assertEqual(body, BODY[start : end + 1], header)
            self.assertEqual(response.getheader("Content-Range"), f"bytes {start}-{end}/{len(BODY)}")

        response, body = self.endpoint.get("/bucket/dir/a%20b.bin", {"Range": f"bytes={len(BODY)}-"})
        self.assertEqual(response.status, 416)
        self.assertIn(b"<Code>InvalidRange</Code>", body)
        self.assertEqual(response.getheader("Content-Range"), f"bytes */{len(BODY)}")

    def test_conditions_and_versions(self):
        response, _ = self.endpoint.get("/bucket/dir/a%20b.bin", method="HEAD")
        etag, version = response.getheader("ETag"), response.getheader("x-amz-version-id")
        response, body = self.endpoint.get("/bucket/dir/a%20b.bin", {"If-Match": etag, "Range": "bytes=0-3"})
        self.assertEqual((response.status, body), (206, BODY[:4]))
        response, body = self.endpoint.get("/bucket/dir/a%20b.bin", {"If-Match": '"0000"'})
        self.assertEqual(response.status, 412)
        self.assertIn(b"<Code>PreconditionFailed</Code>", body)
        response, _ = self.endpoint.get("/bucket/dir/a%20b.bin", {"If-None-Match": etag})
        self.assertEqual(response.status, 304)
        response, body = self.endpoint.get(f"/bucket/dir/a%20b.bin?versionId={version}")
        self.assertEqual((response.status, body), (200, BODY))
        response, body = self.endpoint.get("/bucket/dir/a%20b.bin?versionId=other")
        self.assertEqual(response.status, 404)
        self.assertIn(b"<Code>NoSuchVersion</Code>", body)

    def test_errors(self):
        for path, status, code in [
            ("/bucket/missing", 404, "NoSuchKey"),
            ("/bucket/dir", 404, "NoSuchKey"),
            ("/bucket/dir/../dir/a%20b.bin", 404, "NoSuchKey"),
            ("/other/key", 404, "NoSuchBucket"),
            ("/bucket?list-type=2", 501, "NotImplemented"),
        ]:
            response, body = self.endpoint.get(path)
            self.assertEqual(response.status, status, path)
            self.assertIn(f"<Code>{code}</Code>".encode(), body, path)
        response, body = self.endpoint.get("/bucket/missing", method="HEAD")
        self.assertEqual((response.status, body), (404, b""))

    def test_keep_alive(self):
        conn = self.endpoint.connection()
        for _ in range(3):
            conn.request("GET", "/bucket/dir/a%20b.bin", headers={"Range": "bytes=0-9"})
            response = conn.getresponse()
            self.assertEqual(response.read(), BODY[:10])
        conn.close()


class ShapingTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.TemporaryDirectory()
        os.makedirs(os.path.join(self.root.name, "b"))
        with open(os.path.join(self.root.name, "b", "k"), "wb") as f:
            f.write(BODY)

    def tearDown(self):
        self.root.cleanup()

    def first_bytes(self, endpoint, requests):
        """Seconds from each request to its first byte, on one keep-alive connection."""
        conn = endpoint.connection()
        delays = []
        for _ in range(requests):
            start = time.perf_counter()
            conn.request("GET", "/b/k", headers={"Range": "bytes=0-0"})
            response = conn.getresponse()
            response.read()
            delays.append(time.perf_counter() - start)
        conn.close()
        return delays

    def test_latency_per_request(self):
        endpoint = Endpoint("--root", self.root.name, "--latency-ms", "50")
        try:
            delays = self.first_bytes(endpoint, 3)
        finally:
            endpoint.stop()
        for delay in delays:
            self.assertGreaterEqual(delay, 0.049)
            self.assertLess(delay, 0.5)

    def test_bandwidth_per_connection(self):
        endpoint = Endpoint("--root", self.root.name, "--mbps", "20")
        try:
            start = time.perf_counter()
            _, body = endpoint.get("/b/k")
            elapsed = time.perf_counter() - start
        finally:
            endpoint.stop()
        self.assertEqual(body, BODY)
        # 2 MiB at 20 MB/s is 105 ms, less the first burst (256 KiB).
        self.assertGreater(elapsed, 0.08)
        self.assertLess(elapsed, 1.0)

    def test_drops_every_kth_get(self):
        endpoint = Endpoint("--root", self.root.name, "--drop-after-bytes", "100000", "--drop-every", "2")
        try:
            results = []
            for _ in range(4):
                conn = endpoint.connection()
                conn.request("GET", "/b/k")
                response = conn.getresponse()
                try:
                    results.append(len(response.read()))
                except http.client.IncompleteRead as e:
                    results.append(("cut", len(e.partial)))
                conn.close()
        finally:
            err = endpoint.stop()
        self.assertEqual(results[0], len(BODY))
        self.assertEqual(results[2], len(BODY))
        self.assertEqual(results[1][0], "cut")
        self.assertEqual(results[3][0], "cut")
        self.assertLess(results[1][1], 100000)
        self.assertRegex(err, r"drops=2 ")

    def test_relay(self):
        upstream = Endpoint("--root", self.root.name)
        proxy = Endpoint("--upstream", f"http://127.0.0.1:{upstream.port}", "--latency-ms", "40", "--drop-after-bytes", "50000", "--drop-every", "3")
        try:
            delays = self.first_bytes(proxy, 2)  # GETs 1 and 2: not dropped
            _, body = proxy.get("/b/k", {"Range": "bytes=5-9"}, method="HEAD")  # not a GET
            self.assertEqual(body, b"")
            with self.assertRaises(http.client.IncompleteRead):
                proxy.get("/b/k")  # GET 3: dropped
            response, body = proxy.get("/b/k")
            self.assertEqual((response.status, body), (200, BODY))
        finally:
            proxy_err = proxy.stop()
            upstream.stop()
        for delay in delays:
            self.assertGreaterEqual(delay, 0.039)
        self.assertRegex(proxy_err, r"requests=5 gets=4 .*drops=1 ")
        self.assertTrue(re.search(r"cpu_s=[0-9.]+", proxy_err))


if __name__ == "__main__":
    unittest.main()
