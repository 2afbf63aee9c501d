import Foundation
import Replay
import Testing

@testable import Capture

#if canImport(Glibc)
    import Glibc
#endif

/// A real HTTP/1.1 server on 127.0.0.1 (Python's http.server, keep-alive,
/// pipelining, chunked request bodies), started and stopped by pid.
final class LoopbackHTTPServer: @unchecked Sendable {
    let process = Process()
    let port: UInt16
    private let script: String

    static let source = """
        import http.server, socketserver, sys
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *args):
                pass
            def body(self):
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\\r\\n", b"\\n", b""):
                                pass
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))
            def reply(self):
                body = self.body()
                out = ("%s %s %d" % (self.command, self.path, len(body))).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
            do_GET = do_POST = do_PUT = do_DELETE = reply
        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            request_queue_size = 512
        server = Server(("127.0.0.1", 0), Handler)
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """

    init() throws {
        script =
            FileManager.default.temporaryDirectory.appendingPathComponent("http-server-\(UUID().uuidString).py").path
        try Self.source.write(toFile: script, atomically: true, encoding: .utf8)
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [script]
        process.standardOutput = output
        try process.run()
        let line = output.fileHandleForReading.availableData
        guard let port = UInt16(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            process.terminate()
            throw CaptureTestFailure("HTTP server did not report its port")
        }
        self.port = port
    }

    func stop() {
        if process.isRunning {
            // SIGKILL: SIGTERM did not stop it here (the child can inherit a
            // blocked signal mask from the test runner's threads).
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: script)
    }
}

struct CaptureTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A blocking HTTP/1.1 client connection (runs on its own thread).
struct BlockingHTTPConnection {
    let fd: Int32
    private var pending: [UInt8] = []

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard status == 0 else {
            _ = Glibc.close(fd)
            throw CaptureTestFailure("connect failed: errno \(errno)")
        }
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { throw CaptureTestFailure("send failed: errno \(errno)") }
            offset += sent
        }
    }

    /// Reads one response (the test server always sends Content-Length).
    mutating func readResponse() throws -> [UInt8] {
        while true {
            if let end = Self.headerEnd(pending) {
                let head = String(decoding: pending[..<end], as: UTF8.self).lowercased()
                let length =
                    head.components(separatedBy: "\r\n")
                    .first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                if pending.count >= end + length {
                    let response = Array(pending[..<(end + length)])
                    pending.removeFirst(end + length)
                    return response
                }
            }
            var buffer = [UInt8](repeating: 0, count: 65_536)
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { throw CaptureTestFailure("recv failed or closed: \(count) errno \(errno)") }
            pending += buffer[..<count]
        }
    }

    private static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index + 4
        }
        return nil
    }

    func close() { _ = Glibc.close(fd) }
}

/// Collects captured messages until enough arrive or time runs out.
actor MessageCollector {
    private(set) var messages: [ReplayMessage] = []
    func add(_ message: ReplayMessage) { messages.append(message) }
}

@Suite("Live capture on lo", .serialized, .enabled(if: getuid() == 0, "live capture needs root (CI runs as root)"))
struct LiveCaptureTests {
    /// The requests one client connection sends: keep-alive, pipelined,
    /// chunked, and on some connections a 1 MB body.
    static func workload(connection: Int) -> [[[UInt8]]] {
        var batches: [[[UInt8]]] = []
        for index in 0..<5 {
            batches.append([
                Array(
                    "GET /c\(connection)/keepalive/\(index) HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: capture-test\r\n\r\n"
                        .utf8)
            ])
        }
        batches.append(
            (0..<3).map { index in
                Array("DELETE /c\(connection)/pipelined/\(index) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
            })
        batches.append([
            Array(
                ("POST /c\(connection)/chunked HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "10\r\n0123456789abcdef\r\n7;note=x\r\nchunked\r\n0\r\nX-Trailer: t\r\n\r\n").utf8)
        ])
        if connection % 6 == 0 {
            let body = (0..<1_000_000).map { UInt8(65 + $0 % 26) }
            batches.append([
                Array(
                    "PUT /c\(connection)/large HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.count)\r\n\r\n"
                        .utf8) + body
            ])
        }
        return batches
    }

    @Test("captures exactly what concurrent keep-alive, pipelined, chunked and large-body clients send")
    func liveLoopback() async throws {
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        var options = try RawInputOptions(addresses: ["127.0.0.1:\(server.port)"])
        options.trackResponse = true
        let input = try RawCaptureInput(options: options)
        #expect(input.sources.first?.device == "lo")
        let stream = input.messages()
        let collector = MessageCollector()
        let connections = 24
        var sent: [[UInt8]] = []
        for connection in 0..<connections {
            for batch in Self.workload(connection: connection) { sent += batch }
        }
        let expectedMessages = sent.count * 2
        let consumer = Task {
            for try await message in stream {
                await collector.add(message)
                if await collector.messages.count >= expectedMessages { break }
            }
        }
        // Capture is active once messages() has returned; drive the clients
        // on plain threads, off the cooperative pool.
        let responses = try await Self.runClients(port: server.port, connections: connections)
        #expect(responses == sent.count)
        for _ in 0..<200 where await collector.messages.count < expectedMessages {
            try await Task.sleep(for: .milliseconds(50))
        }
        consumer.cancel()
        _ = await consumer.result
        let captured = await collector.messages
        let requests = captured.filter { $0.type == .request }.map(\.payload)
        let capturedResponses = captured.filter { $0.type == .response }
        #expect(requests.count == sent.count)
        let capturedCounts: [[UInt8]: Int] = requests.reduce(into: [:]) { $0[$1, default: 0] += 1 }
        let sentCounts: [[UInt8]: Int] = sent.reduce(into: [:]) { $0[$1, default: 0] += 1 }
        #expect(capturedCounts == sentCounts)
        #expect(capturedResponses.count == sent.count)
        // Each response is paired with its request by id, and echoes it.
        let requestsByID = Dictionary(
            captured.filter { $0.type == .request }.map { ($0.id, $0.payload) }, uniquingKeysWith: { first, _ in first }
        )
        for response in capturedResponses {
            let request = try #require(requestsByID[response.id])
            let startLine = request.text.components(separatedBy: "\r\n")[0].components(separatedBy: " ")
            #expect(response.payload.text.contains("\(startLine[0]) \(startLine[1]) "))
        }
        for _ in 0..<100 where input.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        let statistics = input.statistics
        #expect(statistics.messagesGivenUpTotal == 0, "\(statistics)")
        #expect(statistics.streamGaps == 0)
        #expect(statistics.packetsDroppedByKernel == 0)
    }

    @Test("the generated filter and device for a loopback address")
    func plan() throws {
        var options = try RawInputOptions(addresses: ["127.0.0.1:8080"])
        options.trackResponse = true
        options.excludedDestinations = [try CaptureAddress(parsing: "127.0.0.1:9000")]
        let input = try RawCaptureInput(options: options)
        #expect(
            input.sources == [
                CaptureSource(
                    device: "lo", file: nil,
                    filter:
                        "((tcp dst port 8080 and (dst host 127.0.0.1)) or (tcp src port 8080 and (src host 127.0.0.1)))"
                        + " and not (dst host 127.0.0.1 and tcp dst port 9000) and not (src host 127.0.0.1 and tcp src port 9000)"
                )
            ])
    }

    static func runClients(port: UInt16, connections: Int) async throws -> Int {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
            let thread = Thread {
                let group = DispatchGroup()
                let tally = ClientTally()
                for connection in 0..<connections {
                    group.enter()
                    let worker = Thread {
                        defer { group.leave() }
                        do {
                            var client = try BlockingHTTPConnection(port: port)
                            defer { client.close() }
                            var received = 0
                            for batch in workload(connection: connection) {
                                try client.send(batch.flatMap { $0 })
                                for _ in batch {
                                    _ = try client.readResponse()
                                    received += 1
                                }
                            }
                            tally.add(received)
                        } catch {
                            tally.fail(error)
                        }
                    }
                    worker.start()
                }
                group.wait()
                let (total, failure) = tally.result()
                if let failure { continuation.resume(throwing: failure) } else { continuation.resume(returning: total) }
            }
            thread.start()
        }
    }
}

/// Thread-safe totals of the client threads.
final class ClientTally: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0
    private var failure: (any Error)?

    func add(_ count: Int) {
        lock.lock()
        total += count
        lock.unlock()
    }
    func fail(_ error: any Error) {
        lock.lock()
        failure = error
        lock.unlock()
    }
    func result() -> (Int, (any Error)?) {
        lock.lock()
        defer { lock.unlock() }
        return (total, failure)
    }
}

/// Runs only without root (e.g. `setpriv --reuid=nobody ...`); CI is root,
/// so this documents and checks the message users without privileges see.
@Suite("Live capture without privileges", .enabled(if: getuid() != 0, "only meaningful when not root"))
struct UnprivilegedCaptureTests {
    @Test("says that live capture needs root or CAP_NET_RAW")
    func permissionMessage() async throws {
        let input = try RawCaptureInput(options: try RawInputOptions(addresses: ["127.0.0.1:8080"]))
        do {
            for try await _ in input.messages() {}
            Issue.record("capture started without privileges")
        } catch let error as CaptureError {
            #expect(error == .permissionDenied(device: "lo"))
            #expect(error.description.contains("live capture needs root or CAP_NET_RAW (and CAP_NET_ADMIN)"))
        }
    }
}
