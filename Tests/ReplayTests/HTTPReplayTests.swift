import Foundation
import NIOCore
import Replay
import Testing

/// Replays through the real command to real HTTP servers on loopback and
/// checks what arrives.
@Suite("HTTP replay to loopback servers", .serialized)
struct HTTPReplayTests {
    /// Writes `payloads` as requests into a .gor file; returns its path.
    private func gorFile(_ payloads: [[UInt8]], in directory: URL, spacing: Int64 = 1000) throws -> String {
        let path = directory.appendingPathComponent("in-\(UUID().uuidString).gor")
        try writeGor(
            payloads.enumerated().map {
                requestMessage($0.offset, $0.element, timestamp: 1_700_000_000_000_000_000 + Int64($0.offset) * spacing)
            },
            to: path)
        return path.path
    }

    private func withServer(
        delay: TimeAmount = .zero, _ body: (TestHTTPServer, URL) async throws -> Void
    ) async throws {
        let server = try await TestHTTPServer(responseDelay: delay)
        let directory = try makeTemporaryDirectory()
        do {
            try await body(server, directory)
        } catch {
            await server.shutdown()
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        await server.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    @Test("bytes arrive as captured, except the Host header set to the target")
    func faithfulBytes() async throws {
        try await withServer { server, directory in
            let original = request(
                "POST /search?q=tax&page=2 HTTP/1.1\nhost: www.gov.uk\nX-Zeta: 1\nx-alpha:   spaced  \nContent-Length: 5",
                body: "a=b&c")
            let input = try gorFile([original], in: directory)
            let run = await runGoReplay(["--input-file", input, "--output-http", server.url])
            #expect(run.status == 0)
            let expected = request(
                "POST /search?q=tax&page=2 HTTP/1.1\nhost: 127.0.0.1:\(server.port)\nX-Zeta: 1\nx-alpha:   spaced  \nContent-Length: 5",
                body: "a=b&c")
            #expect(server.requests == [expected])
        }
    }

    @Test("the Host rewrite on bytes: no space after the colon, already the target, whitespace, absolute form")
    func hostRewriteEdges() async throws {
        try await withServer { server, directory in
            let target = "127.0.0.1:\(server.port)"
            let input = try gorFile(
                [
                    request("GET /a HTTP/1.1\nHost:www.gov.uk\nX: 1"),
                    request("GET /b HTTP/1.1\nHost: \(target)"),
                    request("GET /c HTTP/1.1\nX-First: 1\nHOST:\t www.gov.uk \t\nX: 2"),
                    request("GET http://www.gov.uk/d?x=1 HTTP/1.1\nHost: www.gov.uk"),
                    request("GET /e HTTP/1.1\nX: no host"),
                ], in: directory)
            let run = await runGoReplay([
                "--input-file", input, "--output-http", server.url, "--output-http-workers", "1",
            ])
            #expect(run.status == 0)
            #expect(
                server.requestTexts.sorted() == [
                    "GET /a HTTP/1.1\r\nHost: \(target)\r\nX: 1\r\n\r\n",
                    "GET /b HTTP/1.1\r\nHost: \(target)\r\n\r\n",
                    "GET /c HTTP/1.1\r\nX-First: 1\r\nHOST:\t \(target) \t\r\nX: 2\r\n\r\n",
                    "GET /d?x=1 HTTP/1.1\r\nHost: \(target)\r\n\r\n",
                    // No Host header: the parser adds one after the request line.
                    "GET /e HTTP/1.1\r\nHost: \(target)\r\nX: no host\r\n\r\n",
                ])
        }
    }

    @Test("--http-original-host keeps Host; a URL path replaces the request target")
    func originalHostAndPath() async throws {
        try await withServer { server, directory in
            let input = try gorFile([request("GET /old?x=1 HTTP/1.1\nHost: www.gov.uk")], in: directory)
            _ = await runGoReplay(["--input-file", input, "--output-http", server.url, "--http-original-host"])
            _ = await runGoReplay(["--input-file", input, "--output-http", server.url + "/new/path?y=2"])
            #expect(
                server.requestTexts == [
                    "GET /old?x=1 HTTP/1.1\r\nHost: www.gov.uk\r\n\r\n",
                    "GET /new/path?y=2 HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\n\r\n",
                ])
        }
    }

    @Test("chunked request bodies arrive untouched")
    func chunkedBody() async throws {
        try await withServer { server, directory in
            let body = "4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nTrailer: x\r\n\r\n"
            let original = request(
                "POST /upload HTTP/1.1\nHost: 127.0.0.1:\(server.port)\nTransfer-Encoding: chunked", body: body)
            let input = try gorFile([original], in: directory)
            let run = await runGoReplay(["--input-file", input, "--output-http", server.url])
            #expect(run.status == 0)
            #expect(server.requests == [original])
        }
    }

    @Test("method, URL and header filters drop exactly what they should")
    func filters() async throws {
        try await withServer { server, directory in
            let payloads = [
                request("GET /api/users HTTP/1.1\nHost: a\nX-Env: prod"),
                request("POST /api/users HTTP/1.1\nHost: a\nX-Env: prod\nContent-Length: 0"),
                request("GET /api/admin HTTP/1.1\nHost: a\nX-Env: prod"),
                request("GET /static/x.css HTTP/1.1\nHost: a\nX-Env: prod"),
                request("GET /api/orders HTTP/1.1\nHost: a\nX-Env: staging"),
                request("GET /api/orders?id=1 HTTP/1.1\nHost: a\nX-Env: prod\nX-Bot: yes"),
                request("HEAD /api/health HTTP/1.1\nHost: a"),
            ]
            let input = try gorFile(payloads, in: directory)
            let run = await runGoReplay([
                "--input-file", input, "--output-http", server.url,
                "--http-allow-method", "GET", "--http-allow-method", "HEAD",
                "--http-allow-url", "^/api/", "--http-disallow-url", "/admin",
                "--http-allow-header", "X-Env: ^prod$", "--http-disallow-header", "X-Bot: yes",
            ])
            #expect(run.status == 0)
            #expect(
                server.requestTexts.map { $0.split(separator: "\r\n").first.map(String.init) ?? "" } == [
                    "GET /api/users HTTP/1.1"
                ])
            #expect(run.counter("filtered") == 6)
        }
    }

    @Test("set-header (incl. blanking), set-param, rewrite-url with $1, rewrite-header")
    func rewrites() async throws {
        try await withServer { server, directory in
            let input = try gorFile(
                [request("GET /v1/user/42/ping?a=1 HTTP/1.1\nHost: a\nCookie: secret\nX-Version: v1-beta")],
                in: directory)
            let run = await runGoReplay([
                "--input-file", input, "--output-http", server.url,
                "--http-set-header", "Cookie:", "--http-set-header", "X-Replayed: true",
                "--http-set-param", "a=9", "--http-set-param", "debug=1",
                "--http-rewrite-url", "/v1/user/([^\\/]+)/ping:/v2/user/$1/ping",
                "--http-rewrite-header", "X-Version: v1-(.*),v2-$1",
            ])
            #expect(run.status == 0)
            #expect(
                server.requestTexts == [
                    "GET /v2/user/42/ping?a=9&debug=1 HTTP/1.1\r\nX-Replayed: true\r\nHost: 127.0.0.1:\(server.port)\r\nCookie:\r\nX-Version: v2-beta\r\n\r\n"
                ])
        }
    }

    @Test("set-header runs before header filters (GoReplay's order); set Host implies original host")
    func evaluationOrder() async throws {
        try await withServer { server, directory in
            let input = try gorFile([request("GET / HTTP/1.1\nHost: a")], in: directory)
            let dropped = await runGoReplay([
                "--input-file", input, "--output-http", server.url,
                "--http-set-header", "X-Test: 1", "--http-disallow-header", "X-Test: 1",
            ])
            #expect(dropped.counter("filtered") == 1)
            _ = await runGoReplay([
                "--input-file", input, "--output-http", server.url, "--http-set-header", "Host: staging.gov.uk",
            ])
            #expect(server.requestTexts == ["GET / HTTP/1.1\r\nHost: staging.gov.uk\r\n\r\n"])
        }
    }

    @Test("several outputs at once, and --split-output round robin")
    func severalOutputs() async throws {
        try await withServer { first, directory in
            let second = try await TestHTTPServer()
            defer { Task { await second.shutdown() } }
            let payloads = (0..<10).map { request("GET /\($0) HTTP/1.1\nHost: a") }
            let input = try gorFile(payloads, in: directory)
            let file = directory.appendingPathComponent("copy.gor").path
            let all = await runGoReplay([
                "--input-file", input, "--output-http", first.url, "--output-http", second.url,
                "--output-file", file, "--output-file-append",
            ])
            #expect(all.status == 0)
            #expect(first.requests.count == 10)
            #expect(second.requests.count == 10)
            let reader = try GorFileReader(path: file)
            var written = 0
            while try reader.next() != nil { written += 1 }
            #expect(written == 10)

            let split = await runGoReplay([
                "--input-file", input, "--output-http", first.url, "--output-http", second.url, "--split-output",
            ])
            #expect(split.status == 0)
            #expect(first.requests.count == 15)
            #expect(second.requests.count == 15)
        }
    }

    @Test("keep-alive: connections are reused")
    func keepAlive() async throws {
        try await withServer { server, directory in
            let input = try gorFile((0..<200).map { request("GET /\($0) HTTP/1.1\nHost: a") }, in: directory)
            let run = await runGoReplay([
                "--input-file", input, "--output-http", server.url, "--output-http-workers", "3",
            ])
            #expect(run.status == 0)
            #expect(server.requests.count == 200)
            #expect(server.connections <= 3)
        }
    }

    @Test("|N through the real command: a burst gets one window's worth, a paced stream never more than N per window")
    func absoluteRateLimit() async throws {
        try await withServer { server, directory in
            // A burst: all 290 requests carry the same timestamp, so they reach the limiter together.
            let burst = try gorFile(
                (0..<290).map { request("GET /b\($0) HTTP/1.1\nHost: a") }, in: directory, spacing: 0)
            var started = monotonicNanoseconds()
            let burstRun = await runGoReplay(["--input-file", burst, "--output-http", server.url + "|50"])
            var windows = Int((monotonicNanoseconds() - started) / 1_000_000_000) + 1
            #expect(burstRun.status == 0)
            #expect(
                server.requests.count >= 50 && server.requests.count <= 50 * windows,
                "got \(server.requests.count) in \(windows) window(s)")
            #expect(burstRun.counter("rate limit") == 290 - server.requests.count)

            // A stream paced over 2.9 s. The limiter's windows start at the first message it
            // sees, so a run of E seconds spans at most floor(E) + 1 windows of 50 each; that
            // bound holds however slowly a loaded machine paces the input. (The exact 10%
            // arithmetic is checked against an injected clock in RateLimiterTests.)
            let before = server.requests.count
            let paced = try gorFile(
                (0..<290).map { request("GET /p\($0) HTTP/1.1\nHost: a") }, in: directory, spacing: 10_000_000)
            started = monotonicNanoseconds()
            let pacedRun = await runGoReplay(["--input-file", paced, "--output-http", server.url + "|50"])
            windows = Int((monotonicNanoseconds() - started) / 1_000_000_000) + 1
            let passed = server.requests.count - before
            #expect(pacedRun.status == 0)
            #expect(passed >= 50 && passed <= 50 * windows, "got \(passed) in \(windows) window(s)")
            #expect(pacedRun.counter("rate limit") == 290 - passed)
        }
    }

    @Test("|20% samples: 2,000 requests → 400 ± 100 (5 standard deviations)")
    func percentSampling() async throws {
        try await withServer { server, directory in
            let input = try gorFile((0..<2000).map { request("GET /\($0) HTTP/1.1\nHost: a") }, in: directory)
            let run = await runGoReplay([
                "--input-file", input, "--output-http", server.url + "|20%", "--output-http-queue-len", "5000",
            ])
            #expect(run.status == 0)
            #expect((300...500).contains(server.requests.count), "got \(server.requests.count)")
        }
    }

    @Test("a target that is down: input keeps flowing, failures counted")
    func targetDown() async throws {
        try await withServer { server, directory in
            let deadPort = server.port
            await server.shutdown()
            let input = try gorFile((0..<50).map { request("GET /\($0) HTTP/1.1\nHost: a") }, in: directory)
            let file = directory.appendingPathComponent("still.gor").path
            let run = await runGoReplay([
                "--input-file", input, "--output-http", "http://127.0.0.1:\(deadPort)", "--output-file", file,
                "--output-file-append",
            ])
            #expect(run.status == 0)
            #expect(run.counter("requests read") == 50)
            let failed = run.counter("failed") ?? 0
            let queueFull = run.counter("queue full") ?? 0
            #expect(failed + queueFull == 50)
            #expect(failed > 0)
            let reader = try GorFileReader(path: file)
            var written = 0
            while try reader.next() != nil { written += 1 }
            #expect(written == 50)
        }
    }

    @Test("a slow target: the input does not wait, drops beyond the queue are counted")
    func slowTarget() async throws {
        try await withServer(delay: .milliseconds(500)) { server, directory in
            let input = try gorFile((0..<100).map { request("GET /\($0) HTTP/1.1\nHost: a") }, in: directory)
            let started = ContinuousClock.now
            let run = await runGoReplay([
                "--input-file", input, "--output-http", server.url, "--output-http-workers", "1",
                "--output-http-queue-len", "2", "--output-http-timeout", "2s",
            ])
            let elapsed = ContinuousClock.now - started
            #expect(run.status == 0)
            #expect(run.counter("requests read") == 100)
            // One on the connection and two queued can be served; the rest drop.
            #expect(run.counter("queue full") ?? 0 >= 97 - 6)
            // Waiting on the target would take 100 × 0.5 s.
            #expect(elapsed < .seconds(20))
        }
    }

    @Test("--output-http-track-response writes replayed responses (type 3) to the file output")
    func trackResponse() async throws {
        try await withServer { server, directory in
            let input = try gorFile((0..<3).map { request("GET /\($0) HTTP/1.1\nHost: a") }, in: directory)
            let file = directory.appendingPathComponent("both.gor").path
            let run = await runGoReplay([
                "--input-file", input, "--output-http", server.url, "--output-http-track-response",
                "--output-file", file, "--output-file-append",
            ])
            #expect(run.status == 0)
            let reader = try GorFileReader(path: file)
            var types: [PayloadType] = []
            var replayed: [ReplayMessage] = []
            while let message = try reader.next() {
                types.append(message.type)
                if message.type == .replayedResponse { replayed.append(message) }
            }
            #expect(types.filter { $0 == .request }.count == 3)
            #expect(replayed.count == 3)
            #expect(
                replayed.first.map { String(decoding: $0.payload, as: UTF8.self) }?.hasPrefix("HTTP/1.1 200 OK\r\n")
                    == true)
            #expect(Set(replayed.map(\.id)) == Set((0..<3).map { String(format: "%024x", $0 + 1) }))
        }
    }

    @Test("HTTPS to a local TLS server with a self-signed certificate")
    func https() async throws {
        let certificate = try SelfSignedCertificate()
        defer { try? FileManager.default.removeItem(at: certificate.directory) }
        let server = try await TestHTTPServer(tls: try certificate.serverContext())
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try gorFile((0..<5).map { request("GET /secure/\($0) HTTP/1.1\nHost: a") }, in: directory)
        let verified = await runGoReplay(["--input-file", input, "--output-http", "https://127.0.0.1:\(server.port)"])
        // Without --output-http-skip-verify the self-signed certificate is refused.
        #expect(verified.counter("failed") == 5)
        #expect(server.requests.isEmpty)
        let run = await runGoReplay([
            "--input-file", input, "--output-http", "https://127.0.0.1:\(server.port)", "--output-http-skip-verify",
        ])
        #expect(run.status == 0)
        #expect(server.requestTexts.contains("GET /secure/0 HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\n\r\n"))
        #expect(server.requests.count == 5)
        await server.shutdown()
    }

    @Test("--exit-after stops a looping replay with status 0")
    func exitAfter() async throws {
        try await withServer { server, directory in
            let input = try gorFile(
                (0..<5).map { request("GET /\($0) HTTP/1.1\nHost: a") }, in: directory, spacing: 50_000_000)
            let run = await runGoReplay([
                "--input-file", input, "--input-file-loop", "--output-http", server.url, "--exit-after", "700ms",
            ])
            #expect(run.status == 0)
            // 5 requests per 250 ms of recording: more than one pass.
            #expect(server.requests.count > 5)
        }
    }
}
