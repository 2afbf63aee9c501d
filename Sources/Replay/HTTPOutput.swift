import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// Where `--output-http` sends requests, parsed from its URL.
public struct HTTPTarget: Sendable, Equatable {
    public var isTLS: Bool
    public var host: String
    public var port: Int
    /// `host[:port]` as written in the URL, for the Host header.
    public var hostHeader: String
    /// Path and query when the URL has them: it then replaces every
    /// request's target (GoReplay semantics).
    public var pathAndQuery: String?
    /// `Basic …` from URL user info.
    public var authorization: String?

    /// Parses `http://host[:port][/path]`, `https://…` or a bare `host:port`.
    public init(parsing text: String) throws(ConfigurationError) {
        var rest = Substring(text)
        if let range = rest.range(of: "://") {
            let scheme = rest[..<range.lowerBound].lowercased()
            guard scheme == "http" || scheme == "https" else {
                throw .malformedRule(text, expected: "an http:// or https:// URL")
            }
            isTLS = scheme == "https"
            rest = rest[range.upperBound...]
        } else {
            isTLS = false
        }
        var authority = rest
        pathAndQuery = nil
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) {
            authority = rest[..<slash]
            var path = String(rest[slash...])
            if path.hasPrefix("?") { path = "/" + path }
            pathAndQuery = path == "/" ? nil : path
        }
        authorization = nil
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at].removingPercentEncoding ?? String(authority[..<at])
            authorization = "Basic " + Data(userInfo.utf8).base64EncodedString()
            authority = authority[authority.index(after: at)...]
        }
        hostHeader = String(authority)
        var hostPart = authority
        var portPart: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .malformedRule(text, expected: "[IPv6]:port") }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portPart = after.dropFirst() }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            portPart = authority[authority.index(after: colon)...]
        }
        host = hostPart.isEmpty ? "127.0.0.1" : String(hostPart)
        if host == "localhost" { host = "127.0.0.1" }
        if let portPart {
            guard let port = Int(portPart), (1...65535).contains(port) else {
                throw .malformedRule(text, expected: "a port between 1 and 65535")
            }
            self.port = port
        } else {
            port = isTLS ? 443 : 80
        }
        if hostHeader.isEmpty { hostHeader = host }
    }

    public var description: String {
        "\(isTLS ? "https" : "http")://\(hostHeader)\(pathAndQuery ?? "")"
    }
}

/// Settings of `--output-http`.
public struct HTTPOutputOptions: Sendable {
    /// Connections per target (`--output-http-workers`).
    public var workers = 10
    /// Requests waiting for a free connection; beyond it requests are dropped
    /// and counted (`--output-http-queue-len`).
    public var queueLength = 1000
    /// Whole exchange, connect included (`--output-http-timeout`).
    public var timeout: Duration = .seconds(5)
    /// Emit replayed responses as type-3 messages.
    public var trackResponses = false
    /// Keep the captured Host header.
    public var originalHost = false
    public var skipVerify = false

    public init() {}
}

/// A request on its way to the target.
struct PendingRequest: Sendable {
    var bytes: [UInt8]
    var id: String
    var isHead: Bool
}

/// `--output-http`: replays requests over a keep-alive connection pool.
///
/// Requests go straight to an idle connection, or wait in a bounded queue;
/// when the queue is full they are dropped and counted, so a slow or dead
/// target never holds up the input.
public final class HTTPOutput: MessageOutput {
    public let name: String
    public let target: HTTPTarget
    let options: HTTPOutputOptions
    let group: any EventLoopGroup
    let statistics: ReplayStatistics
    let slot: Int
    let sslContext: NIOSSLContext?
    let responseSink: (@Sendable (ReplayMessage) -> Void)?
    let hostHeaderBytes: [UInt8]
    private let state = NIOLockedValueBox(PoolState())

    private struct PoolState {
        var queue = CircularBuffer<PendingRequest>(initialCapacity: 64)
        var idle: [HTTPReplayConnection] = []
        var live: [ObjectIdentifier: HTTPReplayConnection] = [:]
        var connections = 0
        var inFlight = 0
        var closing = false
    }

    /// - Parameter responseSink: receives type-3 messages when tracking responses.
    public init(
        target: HTTPTarget, options: HTTPOutputOptions, group: any EventLoopGroup, statistics: ReplayStatistics,
        responseSink: (@Sendable (ReplayMessage) -> Void)? = nil
    ) throws {
        self.name = target.description
        self.target = target
        var options = options
        options.workers = max(1, options.workers)
        options.queueLength = max(0, options.queueLength)
        self.options = options
        self.group = group
        self.statistics = statistics
        self.slot = statistics.registerOutput(name: target.description)
        self.responseSink = responseSink
        self.hostHeaderBytes = Array(target.hostHeader.utf8)
        if target.isTLS {
            var configuration = TLSConfiguration.makeClientConfiguration()
            if options.skipVerify { configuration.certificateVerification = .none }
            sslContext = try NIOSSLContext(configuration: configuration)
        } else {
            sslContext = nil
        }
    }

    /// The request bytes as sent: the Host header set to the target (unless
    /// original-host), the target replaced when the URL has a path.
    func prepare(_ payload: [UInt8]) -> (bytes: [UInt8], isHead: Bool)? {
        if target.pathAndQuery == nil && target.authorization == nil, let fast = Self.replacingHost(in: payload, with: options.originalHost ? nil : hostHeaderBytes) {
            return fast
        }
        return parsedPrepare(payload)
    }

    /// Byte-level Host rewrite for the common case (no other change): finds
    /// the Host line without building Strings. Nil when the request needs
    /// the full parser (e.g. it is not HTTP or has no Host header).
    static func replacingHost(in payload: [UInt8], with host: [UInt8]?) -> (bytes: [UInt8], isHead: Bool)? {
        let isHead = payload.starts(with: "HEAD ".utf8)
        if payload.starts(with: "CONNECT ".utf8) { return nil }
        guard let host else { return (payload, isHead) }
        guard var lineStart = payload.firstIndex(of: 0x0A).map({ $0 + 1 }) else { return nil }
        while lineStart < payload.count {
            guard let lineEnd = payload[lineStart...].firstIndex(of: 0x0A) else { return nil }
            if lineEnd == lineStart || (lineEnd == lineStart + 1 && payload[lineStart] == 0x0D) { return nil }  // no Host
            if lineEnd - lineStart >= 5,
                payload[lineStart] | 0x20 == 0x68, payload[lineStart + 1] | 0x20 == 0x6F,
                payload[lineStart + 2] | 0x20 == 0x73, payload[lineStart + 3] | 0x20 == 0x74, payload[lineStart + 4] == 0x3A
            {
                var valueStart = lineStart + 5
                while valueStart < lineEnd && (payload[valueStart] == 0x20 || payload[valueStart] == 0x09) { valueStart += 1 }
                var valueEnd = lineEnd
                if valueEnd > valueStart && payload[valueEnd - 1] == 0x0D { valueEnd -= 1 }
                while valueEnd > valueStart && (payload[valueEnd - 1] == 0x20 || payload[valueEnd - 1] == 0x09) { valueEnd -= 1 }
                if payload[valueStart..<valueEnd].elementsEqual(host) { return (payload, isHead) }
                var bytes: [UInt8] = []
                bytes.reserveCapacity(payload.count + host.count)
                bytes.append(contentsOf: payload[..<valueStart])
                if valueStart == lineStart + 5 { bytes.append(0x20) }
                bytes.append(contentsOf: host)
                bytes.append(contentsOf: payload[valueEnd...])
                return (bytes, isHead)
            }
            lineStart = lineEnd + 1
        }
        return nil
    }

    private func parsedPrepare(_ payload: [UInt8]) -> (bytes: [UInt8], isHead: Bool)? {
        guard var request = HTTPRequest(parsing: payload) else { return (payload, false) }
        if request.method == "CONNECT" { return nil }
        var changed = false
        if let path = target.pathAndQuery, request.target != path {
            request.target = path
            changed = true
        }
        if !options.originalHost, request.header("Host") != target.hostHeader {
            request.setHeader("Host", target.hostHeader)
            changed = true
        }
        if let authorization = target.authorization {
            request.setHeader("Authorization", authorization)
            changed = true
        }
        return (changed ? request.serialized() : payload, request.method == "HEAD")
    }

    public func emit(_ message: ReplayMessage) {
        guard message.type == .request, let prepared = prepare(message.payload) else { return }
        let pending = PendingRequest(bytes: prepared.bytes, id: message.id, isHead: prepared.isHead)
        enum Action { case dispatch(HTTPReplayConnection), connect, queued, dropped }
        let action: Action = state.withLockedValue { state in
            if state.closing { return .dropped }
            if let connection = state.idle.popLast() {
                state.inFlight += 1
                return .dispatch(connection)
            }
            if state.connections < options.workers {
                state.connections += 1
                state.inFlight += 1
                return .connect
            }
            if state.queue.count < options.queueLength {
                state.queue.append(pending)
                return .queued
            }
            return .dropped
        }
        statistics.updateOutput(slot) { counters in
            counters.accepted += 1
            if case .dropped = action { counters.droppedQueueFull += 1 }
        }
        switch action {
        case .dispatch(let connection): connection.sendFromAnyThread(pending)
        case .connect: connect(with: pending)
        case .queued, .dropped: break
        }
    }

    /// Opens a connection and sends `first` on it.
    private func connect(with first: PendingRequest) {
        let connection = HTTPReplayConnection(output: self)
        let sslContext = self.sslContext
        let serverName = target.host.isIPAddress ? nil : target.host
        let connectTimeout = TimeAmount.nanoseconds(Int64(options.timeout.nanoseconds))
        ClientBootstrap(group: group)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        let tls = try NIOSSLClientHandler(context: sslContext, serverHostname: serverName)
                        try channel.pipeline.syncOperations.addHandler(tls)
                    }
                    try channel.pipeline.syncOperations.addHandler(connection)
                }
            }
            .connect(host: target.host, port: target.port)
            .whenComplete { result in
                switch result {
                case .success:
                    self.state.withLockedValue { $0.live[ObjectIdentifier(connection)] = connection }
                    connection.send(first)
                case .failure:
                    self.statistics.updateOutput(self.slot) { $0.failed += 1 }
                    self.connectionEnded(connection, hadRequest: true)
                }
            }
    }

    /// Called on a connection's event loop when a response is done: the next
    /// queued request for it, or nil (it is then idle).
    func nextRequest(after connection: HTTPReplayConnection) -> PendingRequest? {
        state.withLockedValue { state in
            if !state.closing, let next = state.queue.popFirst() {
                return next
            }
            state.inFlight -= 1
            if !state.closing { state.idle.append(connection) }
            return nil
        }
    }

    /// A connection closed or failed to open. Starts a replacement when
    /// requests are waiting.
    func connectionEnded(_ connection: HTTPReplayConnection, hadRequest: Bool) {
        let next: PendingRequest? = state.withLockedValue { state in
            state.live[ObjectIdentifier(connection)] = nil
            state.idle.removeAll { $0 === connection }
            state.connections -= 1
            if hadRequest { state.inFlight -= 1 }
            guard !state.closing, let next = state.queue.popFirst() else { return nil }
            state.connections += 1
            state.inFlight += 1
            return next
        }
        if let next { connect(with: next) }
    }

    /// A request that found its connection closed goes back to the front.
    func requeue(_ request: PendingRequest) {
        state.withLockedValue { state in state.queue.prepend(request) }
    }

    /// A connection gave up its request slot without a response; start a
    /// connection for waiting requests if the pool has room.
    func releaseSlot() {
        let next: PendingRequest? = state.withLockedValue { state in
            state.inFlight -= 1
            guard !state.closing, state.connections < options.workers, let next = state.queue.popFirst() else { return nil }
            state.connections += 1
            state.inFlight += 1
            return next
        }
        if let next { connect(with: next) }
    }

    /// Adds a connection's locally gathered response counts.
    func recordResponses(_ batch: ResponseBatch) {
        guard batch.responses > 0 else { return }
        statistics.updateOutput(slot) { counters in
            counters.sent += batch.responses
            counters.responses += batch.responses
            for (status, count) in batch.statusCodes { counters.statusCodes[status, default: 0] += count }
            counters.latency.merge(batch.latency)
        }
    }

    public func recordRateLimited() { statistics.updateOutput(slot) { $0.droppedRateLimit += 1 } }

    func recordFailure(timeout: Bool) {
        statistics.updateOutput(slot) { counters in
            counters.failed += 1
            if timeout { counters.timeouts += 1 }
        }
    }

    /// Queue length and connections, for stats lines.
    public var queueLength: Int { state.withLockedValue { $0.queue.count } }

    public func flush() {
        let length = queueLength
        statistics.updateOutput(slot) { counters in
            counters.queueLength = length
            counters.queueLengthMax = max(counters.queueLengthMax, length)
        }
    }

    public func close(grace: Duration) async {
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            let busy = state.withLockedValue { $0.inFlight > 0 || !$0.queue.isEmpty }
            if !busy { break }
            try? await Task.sleep(for: .milliseconds(5))
        }
        let (connections, abandoned) = state.withLockedValue { state in
            state.closing = true
            let abandoned = state.queue.count
            state.queue.removeAll()
            state.idle.removeAll()
            return (Array(state.live.values), abandoned)
        }
        if abandoned > 0 { statistics.updateOutput(slot) { $0.droppedQueueFull += abandoned } }
        for connection in connections { connection.closeFromAnyThread() }
        // Let the closes run so counters settle.
        let settle = ContinuousClock.now + .seconds(1)
        while ContinuousClock.now < settle, state.withLockedValue({ $0.connections > 0 }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// Response counts a connection gathers before adding them to the shared
/// statistics (one lock per batch rather than per response).
struct ResponseBatch {
    var responses = 0
    var statusCodes: [Int: Int] = [:]
    var latency = LatencyHistogram()
}

/// One pooled connection. All its state is touched only on its channel's
/// event loop (hence `@unchecked Sendable`); other threads hop there.
final class HTTPReplayConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let output: HTTPOutput
    private var context: ChannelHandlerContext?
    private var current: PendingRequest?
    private var framer: HTTPResponseFramer
    private var sentAt: Int64 = 0
    private var sentAtWall: Int64 = 0
    private var ended = false
    /// True from `send` until the pool takes this connection back as idle.
    private var holdsSlot = false
    private var batch = ResponseBatch()
    private var lastBatchFlush: Int64 = 0
    private var deadline: Int64 = .max
    private var timeoutCheck: RepeatedTask?

    private func flushBatch() {
        output.recordResponses(batch)
        batch = ResponseBatch()
        lastBatchFlush = monotonicNanoseconds()
    }

    init(output: HTTPOutput) {
        self.output = output
        self.framer = HTTPResponseFramer(keepsRaw: output.options.trackResponses)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func sendFromAnyThread(_ request: PendingRequest) {
        guard let context else {
            output.requeue(request)
            return
        }
        context.eventLoop.execute { self.send(request) }
    }

    func closeFromAnyThread() {
        guard let context else { return }
        context.eventLoop.execute { self.context?.close(promise: nil) }
    }

    func send(_ request: PendingRequest) {
        holdsSlot = true
        guard let context, context.channel.isActive, !ended else {
            // Closed while idle: let the pool start a fresh connection for it.
            output.requeue(request)
            if ended {
                holdsSlot = false
                output.releaseSlot()
            } else {
                finishConnection()
            }
            return
        }
        current = request
        framer.reset(requestMethodIsHead: request.isHead)
        sentAt = monotonicNanoseconds()
        sentAtWall = wallNanoseconds()
        deadline = sentAt + output.options.timeout.nanoseconds
        if timeoutCheck == nil {
            // One repeating check per connection is cheaper than a timer per request.
            let period = TimeAmount.milliseconds(max(10, min(250, output.options.timeout.nanoseconds / 4_000_000)))
            timeoutCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { [self] _ in
                guard current != nil, monotonicNanoseconds() >= deadline else { return }
                current = nil
                output.recordFailure(timeout: true)
                self.context?.close(promise: nil)
            }
        }
        var buffer = context.channel.allocator.buffer(capacity: request.bytes.count)
        buffer.writeBytes(request.bytes)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard current != nil else { return }  // stray bytes after a timeout
        do {
            let complete = try buffer.withUnsafeReadableBytes { bytes in try framer.feed(bytes) }
            if complete { completeCurrent(context: context) }
        } catch {
            current = nil
            output.recordFailure(timeout: false)
            context.close(promise: nil)
        }
    }

    private func completeCurrent(context: ChannelHandlerContext) {
        guard let request = current else { return }
        current = nil
        let latency = monotonicNanoseconds() - sentAt
        batch.responses += 1
        batch.statusCodes[framer.statusCode, default: 0] += 1
        batch.latency.record(nanoseconds: latency)
        if batch.responses >= 64 || monotonicNanoseconds() - lastBatchFlush > 100_000_000 { flushBatch() }
        if output.options.trackResponses, let sink = output.responseSink {
            sink(ReplayMessage(type: .replayedResponse, id: request.id, timestamp: sentAtWall, latency: latency, payload: framer.raw))
        }
        if framer.closesConnection {
            context.close(promise: nil)
            return
        }
        if let next = output.nextRequest(after: self) {
            send(next)
        } else {
            holdsSlot = false
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if current != nil {
            if framer.isCloseDelimited {
                completeCurrent(context: context)
            } else {
                current = nil
                    output.recordFailure(timeout: false)
            }
        }
        timeoutCheck?.cancel()
        timeoutCheck = nil
        flushBatch()
        finishConnection()
        context.fireChannelInactive()
    }

    /// Reports the end of this connection to the pool, once.
    private func finishConnection() {
        guard !ended else { return }
        ended = true
        let hadRequest = holdsSlot
        holdsSlot = false
        output.connectionEnded(self, hadRequest: hadRequest)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

extension String {
    var isIPAddress: Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, self, &v4) == 1 || inet_pton(AF_INET6, self, &v6) == 1
    }
}
