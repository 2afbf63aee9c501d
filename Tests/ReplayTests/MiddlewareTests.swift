import Foundation
import Replay
import Testing

/// Middlewares written from GoReplay's protocol (docs/Middleware.md,
/// middleware.go): the shapes of its repository's `examples/middleware/echo.sh`
/// and `echo.py`, and three that do real work. Each run goes through the real
/// command to a real HTTP server.
enum Middlewares {
    /// examples/middleware/echo.sh's shape: read a hex line, decode the meta
    /// line with xxd to log the type on stderr, write the line back unchanged.
    static let echoShell = #"""
        #!/usr/bin/env bash
        while read -r line; do
            header=$(echo -n "$line" | head -c 200 | xxd -r -p | head -n 1)
            case ${header:0:1} in
            "1") >&2 echo "[DEBUG][ECHO] Request type: Request" ;;
            "2") >&2 echo "[DEBUG][ECHO] Request type: Original Response" ;;
            "3") >&2 echo "[DEBUG][ECHO] Request type: Replayed Response" ;;
            *) >&2 echo "[DEBUG][ECHO] Unknown request type $header" ;;
            esac
            echo "$line"
        done
        """#

    /// examples/middleware/echo.py's shape, including its lack of flushing:
    /// stdout is block-buffered into a pipe, so lines arrive at exit.
    static let echoPython = #"""
        #!/usr/bin/env python3
        import sys, fileinput, binascii
        EMPTY_LINE = b'\r\n\r\n'
        def log(msg):
            sys.stderr.write(str(msg) + '\n')
            sys.stderr.flush()
        for raw_line in fileinput.input():
            line = raw_line.rstrip()
            decoded = bytes.fromhex(line)
            (raw_metadata, payload) = decoded.split(b'\n', 1)
            headers_pos = payload.index(EMPTY_LINE) + 4
            raw_headers = payload[:headers_pos]
            raw_content = payload[headers_pos:]
            log('Request type: {}'.format({1: 'Request', 2: 'Original Response', 3: 'Replayed Response'}[int(raw_metadata.split(b' ')[0])]))
            encoded = binascii.hexlify(raw_metadata + b'\n' + raw_headers + raw_content).decode('ascii')
            sys.stdout.write(encoded + '\n')
        """#

    /// Rewrites the Authorization token of requests (token_modifier.go's job).
    static let headerRewriter = #"""
        #!/usr/bin/env python3
        import sys
        for line in sys.stdin:
            data = bytes.fromhex(line.strip())
            meta, payload = data.split(b'\n', 1)
            if meta.startswith(b'1 '):
                payload = payload.replace(b'Authorization: Bearer original', b'Authorization: Bearer replayed')
            sys.stdout.write((meta + b'\n' + payload).hex() + '\n')
            sys.stdout.flush()
        """#

    /// Drops every other request (by arrival order), passes everything else.
    static let dropEveryOther = #"""
        #!/usr/bin/env python3
        import sys
        seen = 0
        for line in sys.stdin:
            if line.startswith('31'):  # hex of "1": a request
                seen += 1
                if seen % 2 == 0:
                    continue
            sys.stdout.write(line)
            sys.stdout.flush()
        """#

    /// Compares original (type 2) with replayed (type 3) statuses per id and
    /// writes a line per mismatch to the file named by its argument.
    static let statusComparer = #"""
        #!/usr/bin/env python3
        import sys
        report = open(sys.argv[1], 'w')
        original, replayed = {}, {}
        def check(request_id):
            if request_id in original and request_id in replayed:
                a, b = original.pop(request_id), replayed.pop(request_id)
                if a != b:
                    report.write('%s %s %s\n' % (request_id, a, b))
                    report.flush()
        for line in sys.stdin:
            data = bytes.fromhex(line.strip())
            meta, payload = data.split(b'\n', 1)
            kind, request_id = meta.split(b' ')[0:2]
            if kind == b'2':
                original[request_id.decode()] = payload.split(b' ')[1].decode()
                check(request_id.decode())
            elif kind == b'3':
                replayed[request_id.decode()] = payload.split(b' ')[1].decode()
                check(request_id.decode())
            sys.stdout.write(line)
            sys.stdout.flush()
        """#

    /// Writes a script into `directory` and returns its path.
    static func write(_ text: String, named name: String, in directory: URL) throws -> String {
        let url = directory.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        return url.path
    }
}

@Suite("Middleware")
struct MiddlewareTests {
    func requests(_ count: Int, header: String = "X-Seq") -> [ReplayMessage] {
        (0..<count).map { index in
            requestMessage(index, request("GET /item/\(index) HTTP/1.1\nHost: example\n\(header): \(index)"))
        }
    }

    func paths(_ server: TestHTTPServer) -> [String] {
        server.requestTexts.map { text in String(text.split(separator: " ")[1]) }
    }

    @Test("hex line encoding round-trips meta and payload, including 0.16's three-field meta")
    func lineEncoding() {
        let message = ReplayMessage(
            type: .response, id: "ab12", timestamp: 42, latency: nil, payload: Array("HTTP/1.1 200 OK\r\n\r\n".utf8))
        var line: [UInt8] = []
        Middleware.encodeLine(message, into: &line)
        #expect(
            String(decoding: line, as: UTF8.self) == Array("2 ab12 42\nHTTP/1.1 200 OK\r\n\r\n".utf8).map {
                String(format: "%02x", $0)
            }.joined() + "\n")
        #expect((try? Middleware.decodeLine(line.dropLast()).get()) == message)
        #expect(Middleware.decodeLine(Array("3g".utf8)[...]) == .failure(.notHex(column: 2)))
        #expect(Middleware.decodeLine(Array("abc".utf8)[...]) == .failure(.oddLength(3)))
        if case .failure(.badRecord) = Middleware.decodeLine(Array("7a7a".utf8)[...]) {
        } else {
            Issue.record("zz is not a record")
        }
    }

    @Test("shell echo (echo.sh's shape): every request reaches the server unchanged")
    func shellEcho() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = try Middlewares.write(Middlewares.echoShell, named: "echo.sh", in: directory)
        let server = try await TestHTTPServer()
        defer { Task { await server.shutdown() } }
        let file = directory.appendingPathComponent("in.gor")
        try writeGor(requests(20), to: file)
        let run = await runGoReplay(["--input-file", file.path, "--output-http", server.url, "--middleware", script])
        #expect(run.status == 0, "\(run.errorText)")
        #expect(paths(server) == (0..<20).map { "/item/\($0)" })
        #expect(server.requestTexts.allSatisfy { $0.contains("X-Seq: ") })
        #expect(run.errorText.contains("middleware: written 20, returned 20"))
    }

    @Test("the built binary: the middleware's stderr is passed through to goreplay's")
    func stderrPassedThrough() async throws {
        guard let binary = goreplayBinary() else {
            Issue.record("goreplay binary not built (swift build --product goreplay)")
            return
        }
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = try Middlewares.write(Middlewares.echoShell, named: "echo.sh", in: directory)
        let file = directory.appendingPathComponent("in.gor")
        try writeGor(requests(3), to: file)
        let process = try GoReplayProcess(
            binary: binary, arguments: ["--input-file", file.path, "--output-null", "--middleware", script])
        let status = await process.waitForExit(timeout: .seconds(30))
        #expect(status == 0)
        #expect(
            process.errorText.components(separatedBy: "[DEBUG][ECHO] Request type: Request").count == 4,
            "\(process.errorText)")
        #expect(process.errorText.contains("output null: sent 3"))
    }

    @Test("Python echo (echo.py's shape, no flushing): all arrive when it exits at end of input")
    func pythonEcho() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = try Middlewares.write(Middlewares.echoPython, named: "echo.py", in: directory)
        let server = try await TestHTTPServer()
        defer { Task { await server.shutdown() } }
        let file = directory.appendingPathComponent("in.gor")
        try writeGor(requests(30), to: file)
        let run = await runGoReplay([
            "--input-file", file.path, "--output-http", server.url, "--middleware", "python3 \(script)",
        ])
        #expect(run.status == 0, "\(run.errorText)")
        #expect(Set(paths(server)) == Set((0..<30).map { "/item/\($0)" }))
        #expect(server.requests.count == 30)
    }

    @Test("a header rewriter: the server sees the rewritten token, filters run after the middleware")
    func headerRewriter() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = try Middlewares.write(Middlewares.headerRewriter, named: "rewrite.py", in: directory)
        let server = try await TestHTTPServer()
        defer { Task { await server.shutdown() } }
        let file = directory.appendingPathComponent("in.gor")
        let messages = (0..<10).map { index in
            requestMessage(index, request("GET /r/\(index) HTTP/1.1\nHost: example\nAuthorization: Bearer original"))
        }
        try writeGor(messages, to: file)
        // The filter only lets the rewritten token through: proof that it runs on the middleware's output.
        let run = await runGoReplay([
            "--input-file", file.path, "--output-http", server.url, "--middleware", script,
            "--http-allow-header", "Authorization: Bearer replayed",
        ])
        #expect(run.status == 0, "\(run.errorText)")
        #expect(server.requests.count == 10)
        #expect(server.requestTexts.allSatisfy { $0.contains("\r\nAuthorization: Bearer replayed\r\n") })
        #expect(!server.requestTexts.contains { $0.contains("original") })
    }

    @Test("drop every other request: exactly the odd-numbered ones reach the server")
    func dropEveryOther() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = try Middlewares.write(Middlewares.dropEveryOther, named: "drop.py", in: directory)
        let server = try await TestHTTPServer()
        defer { Task { await server.shutdown() } }
        let file = directory.appendingPathComponent("in.gor")
        try writeGor(requests(40), to: file)
        let run = await runGoReplay(["--input-file", file.path, "--output-http", server.url, "--middleware", script])
        #expect(run.status == 0, "\(run.errorText)")
        #expect(Set(paths(server)) == Set(stride(from: 0, to: 40, by: 2).map { "/item/\($0)" }))
        #expect(server.requests.count == 20)
        #expect(run.errorText.contains("middleware: written 40, returned 20"))
    }

    @Test("type 2 vs type 3: the comparer sees original and replayed responses and reports the differing ids")
    func statusComparer() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = try Middlewares.write(Middlewares.statusComparer, named: "compare.py", in: directory)
        let report = directory.appendingPathComponent("report.txt")
        let server = try await TestHTTPServer() // always answers 200
        defer { Task { await server.shutdown() } }
        var messages: [ReplayMessage] = []
        var expected: Set<String> = []
        for index in 0..<12 {
            let request = requestMessage(index, request("GET /c/\(index) HTTP/1.1\nHost: example"))
            messages.append(request)
            let status = index % 3 == 0 ? "404 Not Found" : "200 OK"
            if index % 3 == 0 { expected.insert("\(request.id) 404 200") }
            messages.append(
                ReplayMessage(
                    type: .response, id: request.id, timestamp: request.timestamp + 500, latency: 500,
                    payload: Array("HTTP/1.1 \(status)\r\nContent-Length: 0\r\n\r\n".utf8)))
        }
        let file = directory.appendingPathComponent("in.gor")
        try writeGor(messages, to: file)
        let run = await runGoReplay([
            "--input-file", file.path, "--output-http", server.url, "--output-http-track-response",
            "--middleware", "\(script) \(report.path)",
        ])
        #expect(run.status == 0, "\(run.errorText)")
        #expect(server.requests.count == 12)
        let lines = try String(contentsOf: report, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(Set(lines) == expected)
        #expect(lines.count == 4)
        // 12 requests + 12 originals + 12 replayed responses went through it.
        #expect(run.errorText.contains("middleware: written 36, returned 36"))
    }

    @Test("a 200 KiB body (a line over 64 KiB, GoReplay's known limit) passes intact")
    func longLine() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = try Middlewares.write(Middlewares.echoPython, named: "echo.py", in: directory)
        let server = try await TestHTTPServer()
        defer { Task { await server.shutdown() } }
        let body = String((0..<(200 * 1024)).map { index in Character(UnicodeScalar(UInt8(97 + index % 26))) })
        let file = directory.appendingPathComponent("in.gor")
        try writeGor(
            [
                requestMessage(
                    0, request("POST /big HTTP/1.1\nHost: example\nContent-Length: \(body.utf8.count)", body: body))
            ], to: file)
        let run = await runGoReplay(["--input-file", file.path, "--output-http", server.url, "--middleware", script])
        #expect(run.status == 0, "\(run.errorText)")
        #expect(server.requests.count == 1)
        #expect(server.requestTexts.first?.hasSuffix("\r\n\r\n" + body) == true)
    }

    @Test("a middleware that never reads: one line, exit 3, the input waits on a bounded queue")
    func sleepsForever() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try await TestHTTPServer()
        defer { Task { await server.shutdown() } }
        // 3,000 requests of ~1 KiB: far more than the pipe buffer and the 1,000-message queue.
        let padding = String(repeating: "p", count: 1000)
        let messages = (0..<3000).map {
            requestMessage($0, request("GET /s/\($0) HTTP/1.1\nHost: example\nX-Pad: \(padding)"))
        }
        let file = directory.appendingPathComponent("in.gor")
        try writeGor(messages, to: file)
        let started = ContinuousClock.now
        let run = await runGoReplay([
            "--input-file", file.path, "--output-http", server.url, "--middleware", "sleep 600", "--middleware-timeout",
            "1s",
        ])
        #expect(ContinuousClock.now - started < .seconds(60))
        #expect(run.status == 3)
        let failures = run.errorLines.filter { $0.contains("middleware \"sleep 600\"") }
        #expect(failures.count == 1)
        #expect(failures.first?.contains("read and wrote nothing for 1s") == true, "\(run.errorText)")
        // The file input waited for room (bounded queue), so little was written and nothing returned.
        let line = run.errorLines.first { $0.hasPrefix("goreplay: middleware: written") } ?? ""
        let written = Int(line.components(separatedBy: "written ").last?.prefix { $0.isNumber } ?? "") ?? -1
        #expect(written >= 0 && written < 3000, "\(line)")
        #expect(line.contains("returned 0"), "\(line)")
        #expect(server.requests.isEmpty)
    }

    @Test("a middleware that never exits after its input closes: killed after the timeout, exit 3")
    func neverExits() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try await TestHTTPServer()
        defer { Task { await server.shutdown() } }
        let file = directory.appendingPathComponent("in.gor")
        try writeGor(requests(5), to: file)
        let run = await runGoReplay([
            "--input-file", file.path, "--output-http", server.url, "--middleware", "sleep 600", "--middleware-timeout",
            "1s",
        ])
        #expect(run.status == 3)
        #expect(run.errorLines.filter { $0.contains("middleware \"sleep 600\"") }.count == 1)
        #expect(run.errorText.contains("did not exit within 1s after its stdin was closed; killed"), "\(run.errorText)")
    }

    @Test("a middleware that exits after 10 messages while input continues: exactly 10 replayed, exit 3")
    func exitsAfterTen() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = try Middlewares.write(
            """
            #!/usr/bin/env python3
            import sys
            for count in range(10):
                sys.stdout.write(sys.stdin.readline())
                sys.stdout.flush()
            """, named: "ten.py", in: directory)
        let server = try await TestHTTPServer()
        defer { Task { await server.shutdown() } }
        // 60 requests 50 ms apart: the input is still running when the middleware stops.
        let messages = (0..<60).map { index in
            requestMessage(
                index, request("GET /t/\(index) HTTP/1.1\nHost: example"),
                timestamp: 1_700_000_000_000_000_000 + Int64(index) * 50_000_000)
        }
        let file = directory.appendingPathComponent("in.gor")
        try writeGor(messages, to: file)
        let run = await runGoReplay(["--input-file", file.path, "--output-http", server.url, "--middleware", script])
        #expect(run.status == 3)
        #expect(server.requests.count == 10)
        let failures = run.errorLines.filter { $0.contains("middleware \"\(script)\"") }
        #expect(failures.count == 1)
        #expect(
            failures.first?.contains("stopped (exit status 0) after returning 10 messages while input continued")
                == true, "\(run.errorText)")
    }

    @Test("a middleware that prints garbage: lines skipped and counted, one located line, exit 3")
    func invalidHex() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try await TestHTTPServer()
        defer { Task { await server.shutdown() } }
        let file = directory.appendingPathComponent("in.gor")
        try writeGor(requests(8), to: file)
        let run = await runGoReplay([
            "--input-file", file.path, "--output-http", server.url,
            "--middleware", "while read -r line; do echo 'not hex at all'; done",
        ])
        #expect(run.status == 3)
        #expect(server.requests.isEmpty)
        #expect(run.errorText.contains("invalid lines 8"))
        let failures = run.errorLines.filter { $0.contains("lines that are not hex-encoded records") }
        #expect(
            failures == [
                "goreplay: middleware \"while read -r line; do echo 'not hex at all'; done\" wrote 8 lines that are not hex-encoded records (skipped); first: line 1: not a hex digit at column 1"
            ])
    }

    @Test("a command that does not exist: sh reports it on stderr, goreplay exits 3")
    func missingCommand() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("in.gor")
        let messages = (0..<20).map { index in
            requestMessage(
                index, request("GET /m/\(index) HTTP/1.1\nHost: example"),
                timestamp: 1_700_000_000_000_000_000 + Int64(index) * 50_000_000)
        }
        try writeGor(messages, to: file)
        let run = await runGoReplay(["--input-file", file.path, "--output-null", "--middleware", "/nonexistent/mw"])
        #expect(run.status == 3)
        #expect(run.errorText.contains("stopped (exit status 127) after returning 0 messages"), "\(run.errorText)")
    }
}
