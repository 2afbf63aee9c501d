import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Replay
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Waits (bounded) until something accepts TCP connections on 127.0.0.1:`port`: a replayer
/// started a moment ago on a loaded machine may not be listening yet.
func waitUntilListening(_ port: Int, within limit: Duration = .seconds(30)) async {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        close(descriptor)
        if connected == 0 { return }
        try? await Task.sleep(for: .milliseconds(50))
    }
}

/// A TCP port free on 127.0.0.1 right now (bound to 0, then released).
func freeLoopbackPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0 else { throw TCPSetupError("bind failed") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(descriptor, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// The built `goreplay` binary, if `swift build` has made it.
func goreplayBinary() -> String? {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    return ["debug", "release"].map { root.appendingPathComponent(".build/\($0)/goreplay").path }
        .first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// A `goreplay` child process whose stderr is collected.
final class GoReplayProcess: @unchecked Sendable {
    let process = Process()
    private let errorPipe = Pipe()
    private let collected = NIOLockedValueBox(Data())
    private let reader: Thread

    init(binary: String, arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardError = errorPipe
        process.standardOutput = FileHandle.nullDevice
        let handle = errorPipe.fileHandleForReading
        let collected = collected
        reader = Thread {
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                collected.withLockedValue { $0.append(data) }
            }
        }
        try process.run()
        reader.start()
    }

    var pid: Int32 { process.processIdentifier }

    /// Sends `signal` to this child only.
    func signal(_ number: Int32) { _ = kill(process.processIdentifier, number) }

    /// Waits (polling, bounded) for the exit; kills it if it overstays.
    func waitForExit(timeout: Duration, expectSummary: Bool = true) async -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            signal(SIGKILL)
            process.waitUntilExit()
        }
        for _ in 0..<100 where expectSummary && !errorTextIsComplete { try? await Task.sleep(for: .milliseconds(10)) }
        return process.terminationStatus
    }

    private var errorTextIsComplete: Bool {
        errorText.contains("goreplay: summary") || errorText.contains("stopped by signal")
    }

    var errorText: String { String(decoding: collected.withLockedValue { $0 }, as: UTF8.self) }

    /// The number after `label` in the line starting with `prefix`.
    func counter(_ label: String, inLineStarting prefix: String) -> Int? {
        for line in errorText.split(separator: "\n") where line.hasPrefix(prefix) {
            guard let range = line.range(of: label + " ") else { continue }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }
        return nil
    }
}

/// Records every byte each connection sends, and acknowledges records.
final class RecordingTCPServer: Sendable {
    let port: Int
    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup
    private let connections: NIOLockedValueBox<[Int: [UInt8]]>

    init() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let connections = NIOLockedValueBox([Int: [UInt8]]())
        let counter = NIOLockedValueBox(0)
        channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                let number = counter.withLockedValue { value -> Int in
                    value += 1
                    return value
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Recorder(number: number, connections: connections))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.group = group
        self.connections = connections
        self.port = channel.localAddress?.port ?? 0
    }

    /// Records per connection.
    var records: [Int: [ReplayMessage]] {
        connections.withLockedValue { $0 }.mapValues { bytes in
            var result: [ReplayMessage] = []
            var rest = bytes[...]
            while let range = rest.firstRange(of: GorFormat.separator) {
                if let message = try? GorFormat.decodeRecord(rest[..<range.lowerBound]) { result.append(message) }
                rest = rest[range.upperBound...]
            }
            return result
        }
    }

    func shutdown() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }

    private final class Recorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let number: Int
        let connections: NIOLockedValueBox<[Int: [UInt8]]>

        init(number: Int, connections: NIOLockedValueBox<[Int: [UInt8]]>) {
            self.number = number
            self.connections = connections
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
            connections.withLockedValue { $0[number, default: []] += bytes }
        }
    }
}

@Suite("TCP input and output")
struct TCPTests {
    @Test("addresses: HOST:PORT, :PORT, [v6]:PORT; bad ones say why")
    func addresses() async throws {
        #expect(try TCPAddress(parsing: "127.0.0.1:28020") == TCPAddress(parsing: "127.0.0.1:28020"))
        #expect(try TCPAddress(parsing: ":28020").host == "")
        #expect(try TCPAddress(parsing: "[::1]:80").host == "::1")
        #expect(throws: TCPSetupError.self) { try TCPAddress(parsing: "replayer") }
        #expect(throws: TCPSetupError.self) { try TCPAddress(parsing: "host:99999") }
        let run = await runGoReplay(["--output-tcp", ":28020", "--input-dummy", "x"])
        #expect(run.status == 2)
        #expect(run.errorLines.count == 1)
        #expect(
            run.errorText.contains("--output-tcp") && run.errorText.contains("expected HOST:PORT with a host"),
            "\(run.errorText)")
    }

    @Test("sticky: a request and its response always share a connection; without, records spread round robin")
    func sticky() async throws {
        for sticky in [true, false] {
            let server = try await RecordingTCPServer()
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            var options = TCPOutputOptions()
            options.workers = 4
            options.sticky = sticky
            let statistics = ReplayStatistics()
            let output = try TCPOutput(
                address: TCPAddress(parsing: "127.0.0.1:\(server.port)"), options: options, group: group,
                statistics: statistics)
            for index in 0..<40 {
                let request = requestMessage(index, request("GET /s/\(index) HTTP/1.1\nHost: x"))
                output.emit(request)
                output.emit(
                    ReplayMessage(
                        type: .response, id: request.id, timestamp: 1, latency: 1,
                        payload: Array("HTTP/1.1 200 OK\r\n\r\n".utf8)))
                // Replayed responses are never forwarded (GoReplay's rule).
                output.emit(
                    ReplayMessage(
                        type: .replayedResponse, id: request.id, timestamp: 1, latency: 1,
                        payload: Array("HTTP/1.1 200 OK\r\n\r\n".utf8)))
            }
            await output.close(grace: .milliseconds(300))
            try await Task.sleep(for: .milliseconds(200))
            let records = server.records
            #expect(records.values.map(\.count).reduce(0, +) == 80)
            #expect(!records.values.flatMap { $0 }.contains { $0.type == .replayedResponse })
            #expect(records.count == 4, "used \(records.count) connections")
            let sharing = records.values.allSatisfy { list in
                let requests = Set(list.filter { $0.type == .request }.map(\.id))
                let responses = Set(list.filter { $0.type == .response }.map(\.id))
                return requests == responses
            }
            #expect(sharing == sticky)
            // No acknowledgements from this server: everything written is "unacknowledged", nothing silent.
            let counters = statistics.outputSnapshot[0]
            #expect(counters.sent == 80)
            #expect(counters.acknowledged == 0)
            #expect(counters.unacknowledged == 80)
            await server.shutdown()
            try await group.shutdownGracefully()
        }
    }

    @Test("--output-tcp → --input-tcp → --output-http: every request arrives once and is acknowledged")
    func forwardAndAcknowledge() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try await TestHTTPServer()
        defer { Task { await server.shutdown() } }
        let port = try freeLoopbackPort()
        let file = directory.appendingPathComponent("in.gor")
        try writeGor((0..<50).map { requestMessage($0, request("GET /f/\($0) HTTP/1.1\nHost: example")) }, to: file)
        // The replayer's life bounds the test; 25 s leaves a loaded CI machine room to start the
        // sender and replay 50 requests (10 s once cut it short: 48 of 50 acknowledged).
        async let replayer = runGoReplay([
            "--input-tcp", "127.0.0.1:\(port)", "--output-http", server.url, "--exit-after", "25s",
        ])
        await waitUntilListening(port)
        // --output-http-timeout sets how long the sender waits for the last acknowledgements.
        let sender = await runGoReplay([
            "--input-file", file.path, "--output-tcp", "127.0.0.1:\(port)", "--output-tcp-workers", "3",
            "--output-http-timeout", "15s",
        ])
        let replayed = await replayer
        #expect(sender.status == 0)
        #expect(replayed.status == 0)
        #expect(
            Set(server.requestTexts.map { String($0.split(separator: " ")[1]) }) == Set((0..<50).map { "/f/\($0)" }))
        #expect(server.requests.count == 50)
        // Every record is confirmed. A worker that had taken a batch off its queue but not yet
        // written it once looked idle, so the sender stopped it and closed with acknowledgements
        // still on their way (38 of 50 under load on 2026-12-03).
        #expect(sender.counter("acknowledged") == 50, "\(sender.errorText)")
        #expect(sender.counter("unacknowledged") == 0, "\(sender.errorText)")
        // Replayed responses were used for acknowledgements only: not written anywhere.
        #expect(replayed.errorText.contains("requests read 50"), "\(replayed.errorText)")
    }

    @Test(
        "a GoReplay-style sender (never reads, records split at odd boundaries, one corrupt): every good record replayed, the bad one counted"
    )
    func goReplaySender() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let port = try freeLoopbackPort()
        let output = directory.appendingPathComponent("out.gor")
        async let replayer = runGoReplay([
            "--input-tcp", "127.0.0.1:\(port)", "--output-file", output.path, "--output-file-append", "--exit-after",
            "8s",
        ])
        await waitUntilListening(port)
        var bytes: [UInt8] = []
        for index in 0..<200 {
            if index == 100 { bytes += Array("9 bad-type 1\nx".utf8) + GorFormat.separator }
            GorFormat.encode(requestMessage(index, request("GET /g/\(index) HTTP/1.1\nHost: example")), into: &bytes)
        }
        // A plain socket, like GoReplay's output-tcp: write everything in 7-byte pieces, never read.
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        var offset = 0
        while offset < bytes.count {
            let piece = min(7, bytes.count - offset)
            let written = bytes[offset..<(offset + piece)].withUnsafeBytes { write(descriptor, $0.baseAddress, piece) }
            guard written > 0 else { break }
            offset += written
        }
        close(descriptor)
        let run = await replayer
        #expect(run.status == 0)
        #expect(run.errorText.contains("corrupt records 1"), "\(run.errorText)")
        let data = try [UInt8](Data(contentsOf: output))
        var paths: [String] = []
        var rest = data[...]
        while let range = rest.firstRange(of: GorFormat.separator) {
            let message = try GorFormat.decodeRecord(rest[..<range.lowerBound])
            paths.append(String(String(decoding: message.payload, as: UTF8.self).split(separator: " ")[1]))
            rest = rest[range.upperBound...]
        }
        #expect(paths == (0..<200).map { "/g/\($0)" }, "\(run.errorText)")
    }

    @Test(
        "TLS: verification is on by default (a self-signed replayer is refused and counted), trusted with a CA file, off only with skip-verify"
    )
    func secure() async throws {
        let certificate = try SelfSignedCertificate()
        defer { try? FileManager.default.removeItem(at: certificate.directory) }
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try await TestHTTPServer()
        defer { Task { await server.shutdown() } }
        let port = try freeLoopbackPort()
        let file = directory.appendingPathComponent("in.gor")
        try writeGor((0..<10).map { requestMessage($0, request("GET /tls/\($0) HTTP/1.1\nHost: example")) }, to: file)
        async let replayer = runGoReplay([
            "--input-tcp", "127.0.0.1:\(port)", "--input-tcp-secure", "--input-tcp-certificate",
            certificate.certificatePath,
            "--input-tcp-certificate-key", certificate.keyPath, "--output-http", server.url, "--exit-after", "40s",
        ])
        await waitUntilListening(port)
        let base = [
            "--input-file", file.path, "--output-tcp", "127.0.0.1:\(port)", "--output-tcp-workers", "1",
            "--output-http-timeout", "8s",
        ]

        let refused = await runGoReplay(base + ["--output-tcp-secure"])
        #expect(refused.status == 0)
        #expect(
            refused.errorLines.contains { $0.contains("line") == false && $0.contains("failed 10") },
            "\(refused.errorText)")
        #expect(
            refused.errorLines.contains {
                $0.contains("last connection error") && $0.lowercased().contains("certificate")
            }, "\(refused.errorText)")
        #expect(server.requests.isEmpty)

        let trusted = await runGoReplay(
            base + ["--output-tcp-secure", "--output-tcp-ca-certificate", certificate.certificatePath])
        // Delivery is checked at the target below; an acknowledgement may still be in flight.
        #expect(
            (trusted.counter("acknowledged") ?? 0) + (trusted.counter("unacknowledged") ?? 0) == 10,
            "\(trusted.errorText)")
        #expect((trusted.counter("acknowledged") ?? 0) >= 8, "\(trusted.errorText)")

        let unverified = await runGoReplay(base + ["--output-tcp-skip-verify"])
        #expect(
            (unverified.counter("acknowledged") ?? 0) + (unverified.counter("unacknowledged") ?? 0) == 10,
            "\(unverified.errorText)")
        #expect((unverified.counter("acknowledged") ?? 0) >= 8, "\(unverified.errorText)")
        _ = await replayer
        #expect(server.requests.count == 20)
    }

    @Test(
        "fan-in: 3 senders → 1 replayer killed (SIGKILL) and restarted; acknowledged requests arrive exactly once, the rest are counted"
    )
    func fanInKillAndRestart() async throws {
        guard let binary = goreplayBinary() else {
            Issue.record("goreplay binary not built (swift build --product goreplay)")
            return
        }
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try await TestHTTPServer()
        defer { Task { await server.shutdown() } }
        let port = try freeLoopbackPort()
        let perSender = 300
        var files: [String] = []
        for sender in 0..<3 {
            // 300 requests 10 ms apart: three seconds of traffic each.
            let messages = (0..<perSender).map { index in
                ReplayMessage(
                    type: .request, id: String(format: "%08x%016x", sender, index),
                    timestamp: 1_700_000_000_000_000_000 + Int64(index) * 10_000_000, latency: 0,
                    payload: request(
                        "GET /fan/\(sender)/\(index) HTTP/1.1\nHost: example\nX-Request: \(sender)-\(index)"))
            }
            let url = directory.appendingPathComponent("capture\(sender).gor")
            try writeGor(messages, to: url)
            files.append(url.path)
        }
        let replayerArguments = [
            "--input-tcp", "127.0.0.1:\(port)", "--output-http", server.url, "--output-http-timeout", "2s",
        ]
        let first = try GoReplayProcess(binary: binary, arguments: replayerArguments)
        await waitUntilListening(port)
        let senders = try files.map { file in
            // --output-http-timeout 9s: at the end of input, ten seconds to deliver what waited for the restart.
            try GoReplayProcess(
                binary: binary,
                arguments: ["--input-file", file, "--output-tcp", "127.0.0.1:\(port)", "--output-http-timeout", "9s"])
        }
        try await Task.sleep(for: .milliseconds(1000))
        let beforeKill = server.requests.count
        first.signal(SIGKILL)
        _ = await first.waitForExit(timeout: .seconds(10), expectSummary: false)
        try await Task.sleep(for: .milliseconds(500))
        let second = try GoReplayProcess(binary: binary, arguments: replayerArguments)
        let afterRestart = server.requests.count
        var senderStatuses: [Int32] = []
        for sender in senders { senderStatuses.append(await sender.waitForExit(timeout: .seconds(30))) }
        try await Task.sleep(for: .milliseconds(300))
        second.signal(SIGTERM)
        _ = await second.waitForExit(timeout: .seconds(10))

        #expect(senderStatuses == [0, 0, 0])
        #expect(beforeKill > 0, "the first replayer replayed nothing before it was killed")
        #expect(
            server.requests.count > afterRestart,
            "the restarted replayer replayed nothing: \(second.errorText) / \(senders[0].errorText)")
        let received = server.requestTexts.compactMap { text in
            text.split(separator: "\r\n").first { $0.hasPrefix("X-Request: ") }.map(String.init)
        }
        #expect(received.count == Set(received).count, "a request reached the target twice")
        var acknowledged = 0
        var accounted = 0
        for sender in senders {
            let prefix = "goreplay: output tcp:127.0.0.1:\(port):"
            let ack = sender.counter("acknowledged", inLineStarting: prefix) ?? 0
            let unack = sender.counter("unacknowledged", inLineStarting: prefix) ?? 0
            let failed = sender.counter("failed", inLineStarting: prefix) ?? 0
            let queueFull = sender.counter("dropped queue full", inLineStarting: prefix) ?? 0
            // Every record is acknowledged or counted as not (unacknowledged, unsent, dropped).
            #expect(ack + unack + failed + queueFull == perSender, "\(sender.errorText)")
            acknowledged += ack
            accounted += ack + unack
        }
        print(
            "fan-in: target received \(received.count) of \(3 * perSender); acknowledged \(acknowledged), written but unacknowledged \(accounted - acknowledged); before kill \(beforeKill), at restart \(afterRestart)"
        )
        // Acknowledged ⇒ the target answered it; unacknowledged ones may or may not have arrived.
        #expect(received.count >= acknowledged)
        #expect(received.count <= accounted)
        #expect(acknowledged >= perSender, "too few acknowledged (\(acknowledged)) to show anything")
    }
}
