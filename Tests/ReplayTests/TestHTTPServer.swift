import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A real HTTP/1.1 server on 127.0.0.1:0 that records exactly the bytes of
/// each request it receives and answers `200 ok` (optionally after a delay).
final class TestHTTPServer: Sendable {
    struct Recorded: Sendable {
        var requests: [[UInt8]] = []
        var connections = 0
    }

    let port: Int
    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup
    private let recorded: NIOLockedValueBox<Recorded>

    /// How the server ends keep-alive connections, as real servers do.
    enum ClosePolicy: Sendable {
        case never
        /// Close right after each response, without saying so in a header.
        case afterEachResponse
        /// Close a connection idle this long (nginx `keepalive_timeout`).
        case idleTimeout(TimeAmount)
        /// Close after this many responses (nginx `keepalive_requests`),
        /// without a `Connection: close` header.
        case afterRequests(Int)
        /// Answer `HTTP/1.0` without keep-alive and close.
        case http10
        /// Answer the first request of each connection, then close it on
        /// the second without answering (or recording) it: the race of a
        /// keep-alive timeout met by a request, made certain.
        case closeOnSecondRequest
    }

    /// - Parameters:
    ///   - responseDelay: wait this long before answering each request.
    ///   - tls: serve HTTPS with this context.
    ///   - closing: when the server closes connections.
    ///   - port: 0 for any free port; a given one to restart a server in place.
    init(responseDelay: TimeAmount = .zero, tls: NIOSSLContext? = nil, closing: ClosePolicy = .never, port: Int = 0)
        async throws
    {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let recorded = NIOLockedValueBox(Recorded())
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                recorded.withLockedValue { $0.connections += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        RecordingHandler(recorded: recorded, delay: responseDelay, closing: closing))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        self.group = group
        self.channel = channel
        self.recorded = recorded
        self.port = channel.localAddress?.port ?? 0
    }

    var url: String { "http://127.0.0.1:\(port)" }
    var requests: [[UInt8]] { recorded.withLockedValue { $0.requests } }
    var requestTexts: [String] { requests.map { String(decoding: $0, as: UTF8.self) } }
    var connections: Int { recorded.withLockedValue { $0.connections } }

    private let stopped = NIOLockedValueBox(false)

    /// Stops the server; later calls do nothing.
    func shutdown() async {
        let first = stopped.withLockedValue { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

/// Splits the byte stream into requests (Content-Length or chunked bodies)
/// and records each one's raw bytes.
private final class RecordingHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let recorded: NIOLockedValueBox<TestHTTPServer.Recorded>
    private let delay: TimeAmount
    private let closing: TestHTTPServer.ClosePolicy
    private var pending: [UInt8] = []
    private var answered = 0
    private var idleClose: Scheduled<Void>?

    init(
        recorded: NIOLockedValueBox<TestHTTPServer.Recorded>, delay: TimeAmount,
        closing: TestHTTPServer.ClosePolicy = .never
    ) {
        self.recorded = recorded
        self.delay = delay
        self.closing = closing
    }

    func channelActive(context: ChannelHandlerContext) {
        armIdleClose(context: context)
        context.fireChannelActive()
    }

    private func armIdleClose(context: ChannelHandlerContext) {
        guard case .idleTimeout(let idle) = closing else { return }
        idleClose?.cancel()
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        idleClose = context.eventLoop.scheduleTask(in: idle) { loopBoundContext.value.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        pending += buffer.readBytes(length: buffer.readableBytes) ?? []
        idleClose?.cancel()
        while let length = Self.requestLength(pending) {
            let request = Array(pending[..<length])
            pending.removeFirst(length)
            if case .closeOnSecondRequest = closing, answered >= 1 {
                context.close(promise: nil)
                return
            }
            recorded.withLockedValue { $0.requests.append(request) }
            let head = String(decoding: request.prefix(16), as: UTF8.self)
            let body = head.hasPrefix("HEAD ") ? "" : "ok"
            answered += 1
            var closeAfter = false
            var version = "HTTP/1.1"
            switch closing {
            case .never: break
            case .afterEachResponse: closeAfter = true
            case .idleTimeout: break
            case .afterRequests(let limit): closeAfter = answered >= limit
            case .http10:
                version = "HTTP/1.0"
                closeAfter = true
            case .closeOnSecondRequest: break
            }
            let response = "\(version) 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\n\(body)"
            let bytes = context.channel.allocator.buffer(string: response)
            let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            let send = {
                let context = loopBoundContext.value
                context.writeAndFlush(self.wrapOutboundOut(bytes), promise: nil)
                if closeAfter {
                    context.close(promise: nil)
                } else {
                    self.armIdleClose(context: context)
                }
            }
            if delay == .zero {
                send()
            } else {
                context.eventLoop.scheduleTask(in: delay, send)
            }
            if closeAfter { break }
        }
    }

    /// Length of the first complete request in `bytes`, if there is one.
    static func requestLength(_ bytes: [UInt8]) -> Int? {
        let marker: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4,
            let headEnd = (0...(bytes.count - 4)).first(where: { bytes[$0..<($0 + 4)].elementsEqual(marker) })
        else { return nil }
        let head = String(decoding: bytes[..<headEnd], as: UTF8.self).lowercased()
        let bodyStart = headEnd + 4
        if head.contains("transfer-encoding: chunked") {
            // The zero-size chunk, then optional trailers, then a blank line.
            let zero: [UInt8] = Array("0\r\n".utf8)
            var index = bodyStart
            while index + zero.count <= bytes.count {
                if bytes[index..<(index + zero.count)].elementsEqual(zero)
                    && (index == bodyStart || bytes[index - 1] == 10)
                {
                    let afterZero = index + zero.count
                    if bytes.count >= afterZero + 2 && bytes[afterZero] == 13 && bytes[afterZero + 1] == 10 {
                        return afterZero + 2
                    }
                    guard bytes.count >= afterZero + 4 else { return nil }
                    for end in afterZero...(bytes.count - 4) where bytes[end..<(end + 4)].elementsEqual(marker) {
                        return end + 4
                    }
                    return nil
                }
                index += 1
            }
            return nil
        }
        var length = 0
        for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
            length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return bytes.count >= bodyStart + length ? bodyStart + length : nil
    }
}

/// A self-signed certificate for 127.0.0.1 (IP SAN) made with the openssl command line: refused
/// unless verification is off or the certificate itself is the trusted CA.
struct SelfSignedCertificate {
    let directory: URL
    var certificatePath: String { directory.appendingPathComponent("cert.pem").path }
    var keyPath: String { directory.appendingPathComponent("key.pem").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("replay-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", directory.appendingPathComponent("key.pem").path,
            "-out", directory.appendingPathComponent("cert.pem").path,
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
    }

    func serverContext() throws -> NIOSSLContext {
        let configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem)))
        return try NIOSSLContext(configuration: configuration)
    }
}
