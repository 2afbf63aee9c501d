import Foundation
import NIOCore
import NIOPosix
import Replay
import Testing

/// Targets that close keep-alive connections, answer slowly, or present a
/// certificate that does not verify: nothing may be lost or left unexplained.
@Suite("HTTP output: slow and closing targets", .serialized)
struct ConnectionResilienceTests {
    private func gorFile(count: Int, spacing: Int64, in directory: URL, method: String = "GET") throws -> String {
        let path = directory.appendingPathComponent("in-\(UUID().uuidString).gor")
        let messages = (0..<count).map { index in
            requestMessage(
                index, request("\(method) /item/\(index) HTTP/1.1\nHost: www.gov.uk"),
                timestamp: 1_700_000_000_000_000_000 + Int64(index) * spacing)
        }
        try writeGor(messages, to: path)
        return path.path
    }

    private func paths(_ server: TestHTTPServer) -> [String] {
        server.requestTexts.map { text in String(text.split(separator: " ").dropFirst().first ?? "") }
    }

    @Test(
        "a target that closes keep-alive connections loses nothing",
        arguments: [
            ("after each response", TestHTTPServer.ClosePolicy.afterEachResponse, 60, Int64(20_000_000)),
            ("after 300 ms idle, requests 300 ms apart", .idleTimeout(.milliseconds(300)), 8, Int64(300_000_000)),
            ("after 100 requests", .afterRequests(100), 350, Int64(2_000_000)),
            ("HTTP/1.0, closing after each response", .http10, 40, Int64(20_000_000)),
        ])
    func closingTarget(label: String, policy: TestHTTPServer.ClosePolicy, count: Int, spacing: Int64) async throws {
        let server = try await TestHTTPServer(closing: policy)
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try gorFile(count: count, spacing: spacing, in: directory)
        // One connection: every request after the first reuses it, so each
        // close by the server is met by the next request.
        let run = await runGoReplay(["--input-file", input, "--output-http", server.url, "--output-http-workers", "1"])
        await server.shutdown()
        #expect(run.status == 0, "\(label): \(run.errorText)")
        #expect(run.counter("failed") == 0, "\(label): \(run.errorText)")
        #expect(run.counter("dropped") == 0, "\(label): \(run.errorText)")
        #expect(Set(paths(server)) == Set((0..<count).map { "/item/\($0)" }), "\(label)")
        #expect(run.counter("sent") == count, "\(label): \(run.errorText)")
    }

    @Test("a GET met by a closing connection is sent once more on a new one, and counted as retried")
    func retriedOnce() async throws {
        let server = try await TestHTTPServer(closing: .closeOnSecondRequest)
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try gorFile(count: 10, spacing: 20_000_000, in: directory)
        let run = await runGoReplay(["--input-file", input, "--output-http", server.url, "--output-http-workers", "1"])
        await server.shutdown()
        // Requests 1…9 each meet a connection that served one request and
        // closes on the next: each is retried once on a fresh connection.
        #expect(run.counter("failed") == 0, "\(run.errorText)")
        #expect(run.counter("retried") == 9, "\(run.errorText)")
        #expect(paths(server) == (0..<10).map { "/item/\($0)" })
        #expect(server.connections == 10)
    }

    @Test("a target restarted between two bursts loses nothing: its old keep-alive connections are replaced")
    func restartedTarget() async throws {
        let first = try await TestHTTPServer()
        let port = first.port
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // 20 requests at 0–190 ms, 20 more at 1.5–1.69 s; the target restarts at ~0.7 s.
        let path = directory.appendingPathComponent("bursts.gor")
        let times = (0..<20).map { Int64($0) * 10 } + (0..<20).map { 1_500 + Int64($0) * 10 }
        try writeGor(
            times.enumerated().map { index, milliseconds in
                requestMessage(
                    index, request("GET /item/\(index) HTTP/1.1\nHost: a"), timestamp: milliseconds * 1_000_000)
            }, to: path)
        async let run = runGoReplay(["--input-file", path.path, "--output-http", "http://127.0.0.1:\(port)"])
        try await Task.sleep(for: .milliseconds(700))
        await first.shutdown()
        let second = try await TestHTTPServer(port: port)
        let result = await run
        await second.shutdown()
        #expect(result.counter("failed") == 0, "\(result.errorText)")
        #expect(Set(paths(first) + paths(second)) == Set((0..<40).map { "/item/\($0)" }), "\(result.errorText)")
        #expect(result.counter("sent") == 40)
    }

    @Test("a target that does not answer in --output-http-timeout: each request fails as a timeout, on time")
    func unansweredTimesOut() async throws {
        let server = try await TestHTTPServer(responseDelay: .seconds(4))
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try gorFile(count: 3, spacing: 1_000_000, in: directory)
        let started = ContinuousClock.now
        let run = await runGoReplay([
            "--input-file", input, "--output-http", server.url, "--output-http-timeout", "500ms",
        ])
        let elapsed = ContinuousClock.now - started
        await server.shutdown()
        #expect(run.counter("failed") == 3, "\(run.errorText)")
        #expect(run.errorText.contains("(timeouts 3)"), "\(run.errorText)")
        #expect(run.errorText.contains("no response within --output-http-timeout"), "\(run.errorText)")
        // Given up at 0.5 s, not at the target's 4 s answer.
        #expect(elapsed < .seconds(3.5), "\(elapsed)")
    }

    @Test("a target given by a name is resolved before connecting (127.1 is not an address literal)")
    func namedTarget() async throws {
        let server = try await TestHTTPServer()
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try gorFile(count: 20, spacing: 1_000_000, in: directory)
        let run = await runGoReplay(["--input-file", input, "--output-http", "http://127.1:\(server.port)"])
        await server.shutdown()
        #expect(run.counter("failed") == 0, "\(run.errorText)")
        #expect(Set(paths(server)) == Set((0..<20).map { "/item/\($0)" }))
        #expect(server.requestTexts.allSatisfy { $0.contains("Host: 127.1:\(server.port)\r\n") })
    }

    @Test("requests larger than the socket's send buffer arrive whole, and the connection is reused after them")
    func largeRequestBodies() async throws {
        let server = try await TestHTTPServer()
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // 4 MiB does not fit a new loopback socket's send buffer, so the first write is partial and the
        // rest waits for the socket (strace: one sendmsg, then a send of the rest). The file input
        // cuts payloads at 5 MiB (--copy-buffer-size's default), so larger ones would not be whole.
        let size = 4 << 20
        let body = String(repeating: "x", count: size)
        let path = directory.appendingPathComponent("large.gor")
        try writeGor(
            (0..<3).map {
                requestMessage(
                    $0, request("POST /upload/\($0) HTTP/1.1\nHost: a\nContent-Length: \(size)", body: body),
                    timestamp: Int64($0) * 1_000_000)
            } + [requestMessage(3, request("GET /after HTTP/1.1\nHost: a"), timestamp: 3_000_000)],
            to: path)
        let run = await runGoReplay([
            "--input-file", path.path, "--output-http", server.url, "--output-http-workers", "1",
        ])
        await server.shutdown()
        #expect(run.counter("failed") == 0, "\(run.errorText)")
        #expect(paths(server) == ["/upload/0", "/upload/1", "/upload/2", "/after"])
        for request in server.requests.prefix(3) {
            #expect(request.count > size && request.suffix(size).allSatisfy { $0 == UInt8(ascii: "x") })
        }
        #expect(server.connections == 1)
    }

    @Test("a POST on a connection the server closed is not sent twice")
    func nonIdempotentNotRetried() async throws {
        let server = try await TestHTTPServer(closing: .afterEachResponse)
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("post.gor")
        try writeGor(
            (0..<20).map {
                requestMessage(
                    $0, request("POST /form/\($0) HTTP/1.1\nHost: a\nContent-Length: 0"),
                    timestamp: Int64($0) * 20_000_000)
            },
            to: path)
        let run = await runGoReplay([
            "--input-file", path.path, "--output-http", server.url, "--output-http-workers", "1",
        ])
        await server.shutdown()
        // Each arrives at most once; those that met a closed connection are
        // counted as failed, never hidden.
        let arrived = paths(server)
        #expect(arrived.count == Set(arrived).count)
        #expect(arrived.count + (run.counter("failed") ?? -1) == 20, "\(run.errorText)")
        #expect(!run.errorText.contains("retried"))
    }

    @Test("connections scale with a slow target: 600 requests at 300/s to a 200 ms target, none dropped")
    func scalesWithSlowTarget() async throws {
        let server = try await TestHTTPServer(responseDelay: .milliseconds(200))
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try gorFile(count: 600, spacing: 3_333_333, in: directory)
        // A small queue: with the old fixed pool of 10 most of these were dropped.
        let run = await runGoReplay([
            "--input-file", input, "--output-http", server.url, "--output-http-queue-len", "50",
        ])
        await server.shutdown()
        #expect(run.status == 0)
        #expect(run.counter("dropped") == 0, "\(run.errorText)")
        #expect(run.counter("failed") == 0, "\(run.errorText)")
        #expect(server.requests.count == 600)
        // 300/s × 0.2 s ≈ 60 in flight: more than the old 10, far below the cap.
        #expect(
            server.connections > 10 && server.connections <= HTTPOutputOptions.defaultWorkerCap,
            "connections \(server.connections)")
    }

    @Test(
        "--output-http-workers caps connections; idle ones above --output-http-workers-min close after --output-http-worker-timeout"
    )
    func workerCapAndTimeout() async throws {
        let server = try await TestHTTPServer(responseDelay: .milliseconds(100))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let statistics = ReplayStatistics()
        var options = HTTPOutputOptions()
        options.workers = 8
        options.workersMin = 2
        options.workerTimeout = .milliseconds(200)
        let output = try HTTPOutput(
            target: HTTPTarget(parsing: server.url), options: options, group: group, statistics: statistics)
        for index in 0..<40 {
            output.emit(requestMessage(index, request("GET /\(index) HTTP/1.1\nHost: a")))
        }
        #expect(output.connectionCounts.open == 8)
        // Wait (bounded) for all 40 answers, then for the idle ones to close.
        let deadline = ContinuousClock.now + .seconds(20)
        while statistics.outputSnapshot[0].responses < 40, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(statistics.outputSnapshot[0].responses == 40)
        while output.connectionCounts.open > 2, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(output.connectionCounts.open == 2)
        #expect(server.connections == 8)
        await output.close(grace: .seconds(1))
        try await group.shutdownGracefully()
        await server.shutdown()
    }

    @Test("a certificate that does not verify: the error names the cause and --output-http-skip-verify")
    func tlsVerifyFailure() async throws {
        let certificate = try SelfSignedCertificate()
        defer { try? FileManager.default.removeItem(at: certificate.directory) }
        let server = try await TestHTTPServer(tls: try certificate.serverContext())
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try gorFile(count: 3, spacing: 1_000_000, in: directory)
        let url = "https://localhost:\(server.port)"
        let run = await runGoReplay(["--input-file", input, "--output-http", url])
        #expect(run.status == 0)
        #expect(run.counter("failed") == 3, "\(run.errorText)")
        let explained = run.errorLines.filter {
            $0.contains("does not verify") && $0.contains("--output-http-skip-verify")
        }
        // Once while running, once in the summary with its count.
        #expect(explained.count == 2, "\(run.errorText)")
        #expect(explained.contains { $0.contains("failed 3:") }, "\(run.errorText)")
        let skipped = await runGoReplay(["--input-file", input, "--output-http", url, "--output-http-skip-verify"])
        await server.shutdown()
        #expect(skipped.counter("failed") == 0, "\(skipped.errorText)")
        #expect(server.requests.count == 3)
    }

    @Test("requests still in flight when goreplay stops are counted as failed, not retried")
    func inFlightAtExit() async throws {
        let server = try await TestHTTPServer(responseDelay: .seconds(2))
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // Request 0 at 0 s is answered at 2 s; request 1 at 2.1 s reuses its
        // connection and is still waiting when --exit-after (2.5 s) and its
        // 1 s grace end; request 2 (at 60 s) keeps the input open.
        let path = directory.appendingPathComponent("in.gor")
        try writeGor(
            [0, 2_100, 60_000].enumerated().map { index, milliseconds in
                requestMessage(
                    index, request("GET /\(index) HTTP/1.1\nHost: a"), timestamp: Int64(milliseconds) * 1_000_000)
            }, to: path)
        let run = await runGoReplay([
            "--input-file", path.path, "--output-http", server.url, "--output-http-workers", "1", "--exit-after",
            "2500ms",
        ])
        await server.shutdown()
        #expect(run.counter("failed") == 1, "\(run.errorText)")
        #expect(run.counter("responses") == 1, "\(run.errorText)")
        #expect(!run.errorText.contains("retried"), "\(run.errorText)")
        #expect(server.requests.count == 2)
    }

    @Test("a target that never completes the TCP handshake fails on the connect timeout, not later")
    func unansweredConnectTimesOut() async throws {
        // A listener that never accepts, its accept queue filled: Linux drops further SYNs, so a
        // connect neither succeeds nor is refused (as with a firewalled staging host).
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(listener, pointer, length) == 0 && listen(listener, 0) == 0
                    && getsockname(listener, pointer, &length) == 0
            }
        }
        #expect(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        var fillers: [Int32] = []
        defer { for filler in fillers { close(filler) } }
        for _ in 0..<3 {
            let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            fillers.append(filler)
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(filler, $0, length) }
            }
        }
        try await Task.sleep(for: .milliseconds(200)) // the first filler's handshake fills the queue
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try gorFile(count: 2, spacing: 1_000_000, in: directory)
        let started = ContinuousClock.now
        let run = await runGoReplay([
            "--input-file", input, "--output-http", "http://127.0.0.1:\(port)", "--output-http-timeout", "1s",
        ])
        let elapsed = ContinuousClock.now - started
        #expect(run.counter("failed") == 2, "\(run.errorText)")
        #expect(
            run.errorText.contains("cannot connect to 127.0.0.1:\(port): connect timed out (--output-http-timeout)"),
            "\(run.errorText)")
        #expect(elapsed < .seconds(4), "\(elapsed)")
    }

    @Test("a refused connection says so")
    func refusedExplained() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try gorFile(count: 2, spacing: 1_000_000, in: directory)
        // Port 1 on loopback: nothing listens there.
        let run = await runGoReplay(["--input-file", input, "--output-http", "http://127.0.0.1:1"])
        #expect(run.counter("failed") == 2)
        #expect(run.errorText.contains("cannot connect to 127.0.0.1:1: connection refused"), "\(run.errorText)")
    }
}
