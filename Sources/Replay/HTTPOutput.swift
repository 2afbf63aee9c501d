import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// Settings of `--output-http`.
public struct HTTPOutputOptions: Sendable {
    /// Most connections per target (`--output-http-workers`); 0 scales with
    /// demand up to `defaultWorkerCap` (GoReplay: 0 = unlimited).
    public var workers = 0
    /// Connections kept open however idle (`--output-http-workers-min`).
    public var workersMin = 1
    /// An idle connection above `workersMin` closes after this long
    /// (`--output-http-worker-timeout`).
    public var workerTimeout: Duration = .seconds(2)
    /// The cap when `workers` is 0: bounds descriptors and memory.
    public static let defaultWorkerCap = 500
    /// Largest `--output-http-workers` / `-workers-min` accepted.
    public static let maximumWorkers = 10_000
    /// Called once per distinct failure reason (e.g. a TLS certificate that
    /// does not verify), so the operator hears of it while replay runs.
    public var reportFailure: (@Sendable (String) -> Void)?
    /// Requests waiting for a free connection; beyond it requests are dropped
    /// and counted (`--output-http-queue-len`).
    public var queueLength = 1000
    /// Whole exchange, connect included (`--output-http-timeout`).
    public var timeout: Duration = .seconds(5)
    /// Emit replayed responses as type-3 messages.
    public var trackResponses = false
    /// Bytes of each tracked response kept (`--output-http-response-buffer`, GoReplay 1.3's
    /// default 100 KiB); the rest is read and discarded.
    public var responseBufferSize = 100 * 1024
    /// Keep the captured Host header.
    public var originalHost = false
    public var skipVerify = false

    public init() {}
}

/// A request on its way to the target: the captured bytes and where the
/// Host value goes. The connection writes it into a buffer it reuses, so a
/// request costs no allocation beyond the payload the input decoded (a
/// prepared `ByteBuffer` was two more, freed on another thread).
struct PendingRequest: Sendable {
    var payload: [UInt8]
    /// Where the target's Host value replaces the captured one (nil: sent as is).
    var hostValue: Range<Int>?
    /// The captured header had no space after its colon: add one.
    var hostNeedsSpace = false
    var id: String
    var isHead: Bool
    /// Safe to send again when a reused connection turns out closed
    /// (RFC 9110 §9.2.2; what Go's client retries).
    var isIdempotent: Bool
    var retried = false

    init(payload: [UInt8], hostValue: Range<Int>? = nil, hostNeedsSpace: Bool = false, id: String, isHead: Bool) {
        self.payload = payload
        self.hostValue = hostValue
        self.hostNeedsSpace = hostNeedsSpace
        self.id = id
        self.isHead = isHead
        self.isIdempotent = payload.withUnsafeBytes { raw in
            ASCII.hasPrefix(raw, "GET ") || ASCII.hasPrefix(raw, "HEAD ") || ASCII.hasPrefix(raw, "OPTIONS ")
                || ASCII.hasPrefix(raw, "PUT ") || ASCII.hasPrefix(raw, "DELETE ") || ASCII.hasPrefix(raw, "TRACE ")
        }
    }

    /// The request as sent, with `host` in place of the captured Host value.
    func bytes(host: [UInt8]) -> [UInt8] {
        var buffer = ByteBuffer()
        write(into: &buffer, host: host)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    /// Appends the request as sent, with `host` in place of the captured Host value.
    func write(into buffer: inout ByteBuffer, host: [UInt8]) {
        guard let value = hostValue else {
            buffer.writeBytes(payload)
            return
        }
        payload.withUnsafeBytes { raw in
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[..<value.lowerBound]))
            if hostNeedsSpace { buffer.writeInteger(UInt8(0x20)) }
            buffer.writeBytes(host)
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[value.upperBound...]))
        }
    }
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
    /// The target's address when its host is an IP literal: connecting to it
    /// skips NIO's resolver, which runs getaddrinfo on a Dispatch thread per
    /// connection (tens of milliseconds before the first request on a busy
    /// machine). Nil for names, which are resolved per connection.
    let literalAddress: SocketAddress?
    // A Mutex spins briefly before it sleeps: the event loops and the input take it
    // once per request each, and a pthread mutex put them to sleep on every collision.
    private let state = Mutex(PoolState())

    /// Connections at most (from `workers`, or the default cap).
    let maximumConnections: Int
    private let reaper: NIOLockedValueBox<RepeatedTask?> = NIOLockedValueBox(nil)
    private let reportedFailures = NIOLockedValueBox(Set<String>())
    /// Set once the idle reaper runs, so `emit` checks it without a lock.
    private let reaperStarted = Atomic(false)

    private struct IdleConnection {
        var connection: ReplayConnectionHandle
        /// Monotonic time it became idle.
        var since: Int64
    }

    private struct PoolState {
        var queue = CircularBuffer<PendingRequest>(initialCapacity: 64)
        /// Most recently used last: reuse takes from the end, the reaper
        /// closes from the front.
        var idle: [IdleConnection] = []
        var live: [ObjectIdentifier: ReplayConnectionHandle] = [:]
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
        options.workers = min(max(0, options.workers), HTTPOutputOptions.maximumWorkers)
        options.queueLength = max(0, options.queueLength)
        self.maximumConnections = options.workers == 0 ? HTTPOutputOptions.defaultWorkerCap : options.workers
        options.workersMin = min(max(1, options.workersMin), maximumConnections)
        self.options = options
        self.group = group
        self.statistics = statistics
        self.slot = statistics.registerOutput(name: target.description)
        self.responseSink = responseSink
        self.hostHeaderBytes = Array(target.hostHeader.utf8)
        self.literalAddress =
            target.host.isIPAddress ? try? SocketAddress(ipAddress: target.host, port: target.port) : nil
        if target.isTLS {
            var configuration = TLSConfiguration.makeClientConfiguration()
            if options.skipVerify { configuration.certificateVerification = .none }
            sslContext = try NIOSSLContext(configuration: configuration)
        } else {
            sslContext = nil
        }
    }

    /// The request to send for `message`: the Host header set to the target
    /// (unless original-host), the target replaced when the URL has a path.
    /// The common case (only the Host value changes) is left to the
    /// connection, which writes the target's host in its place; the rest go
    /// through the parser. Nil for requests not replayed (CONNECT).
    func prepare(_ message: ReplayMessage) -> PendingRequest? {
        let payload = message.payload
        if target.pathAndQuery == nil && target.authorization == nil,
            let fast = Self.hostRewrite(in: payload, with: options.originalHost ? nil : hostHeaderBytes)
        {
            switch fast.rewrite {
            case .unchanged:
                return PendingRequest(payload: payload, id: message.id, isHead: fast.isHead)
            case .replace(let value, let addSpace):
                return PendingRequest(
                    payload: payload, hostValue: value, hostNeedsSpace: addSpace, id: message.id, isHead: fast.isHead)
            }
        }
        guard let prepared = parsedPrepare(payload) else { return nil }
        return PendingRequest(payload: prepared.bytes, id: message.id, isHead: prepared.isHead)
    }

    /// What the fast path does to a request's Host header.
    enum HostRewrite: Equatable {
        case unchanged
        /// Replace the bytes of `value` with the target's host (after a space
        /// when the header had none after its colon).
        case replace(value: Range<Int>, addSpace: Bool)
    }

    /// Byte-level Host rewrite for the common case (no other change): finds
    /// the Host line without building Strings. Nil when the request needs
    /// the full parser (e.g. it is not HTTP or has no Host header).
    static func hostRewrite(in payload: [UInt8], with host: [UInt8]?) -> (rewrite: HostRewrite, isHead: Bool)? {
        payload.withUnsafeBufferPointer { bytes in hostRewrite(in: bytes, with: host) }
    }

    private static func hostRewrite(in payload: UnsafeBufferPointer<UInt8>, with host: [UInt8]?)
        -> (rewrite: HostRewrite, isHead: Bool)?
    {
        func startsWith(_ literal: StaticString) -> Bool { ASCII.hasPrefix(UnsafeRawBufferPointer(payload), literal) }
        let isHead = startsWith("HEAD ")
        if startsWith("CONNECT ") { return nil }
        // An absolute-form target (`GET http://host/x`, a proxy's request)
        // needs the parser to become origin-form.
        var space = 0
        while space < min(16, payload.count) && payload[space] != 0x20 { space += 1 }
        if space < min(16, payload.count), payload.count >= space + 5,
            payload[space + 1] | 0x20 == 0x68, payload[space + 2] | 0x20 == 0x74,
            payload[space + 3] | 0x20 == 0x74, payload[space + 4] | 0x20 == 0x70
        {
            return nil
        }
        guard let host else { return (.unchanged, isHead) }
        guard var lineStart = payload.firstIndex(of: 0x0A).map({ $0 + 1 }) else { return nil }
        while lineStart < payload.count {
            guard let lineEnd = payload[lineStart...].firstIndex(of: 0x0A) else { return nil }
            // A blank line ends the head: no Host header.
            if lineEnd == lineStart || (lineEnd == lineStart + 1 && payload[lineStart] == 0x0D) { return nil }
            if lineEnd - lineStart >= 5,
                payload[lineStart] | 0x20 == 0x68, payload[lineStart + 1] | 0x20 == 0x6F,
                payload[lineStart + 2] | 0x20 == 0x73, payload[lineStart + 3] | 0x20 == 0x74,
                payload[lineStart + 4] == 0x3A
            {
                var valueStart = lineStart + 5
                while valueStart < lineEnd && (payload[valueStart] == 0x20 || payload[valueStart] == 0x09) {
                    valueStart += 1
                }
                var valueEnd = lineEnd
                if valueEnd > valueStart && payload[valueEnd - 1] == 0x0D { valueEnd -= 1 }
                while valueEnd > valueStart && (payload[valueEnd - 1] == 0x20 || payload[valueEnd - 1] == 0x09) {
                    valueEnd -= 1
                }
                if payload[valueStart..<valueEnd].elementsEqual(host) { return (.unchanged, isHead) }
                return (.replace(value: valueStart..<valueEnd, addSpace: valueStart == lineStart + 5), isHead)
            }
            lineStart = lineEnd + 1
        }
        return nil
    }

    private func parsedPrepare(_ payload: [UInt8]) -> (bytes: [UInt8], isHead: Bool)? {
        guard var request = HTTPRequest(parsing: payload) else { return (payload, false) }
        if request.method == "CONNECT" { return nil }
        var changed = false
        if let originForm = Self.originForm(of: request.target) {
            // Go's client sends the path to the target it was pointed at.
            request.target = originForm
            changed = true
        }
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

    /// `/x?y` for an absolute-form `http://host/x?y`; nil for other targets.
    static func originForm(of requestTarget: String) -> String? {
        let lower = requestTarget.prefix(8).lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else { return nil }
        let afterScheme = requestTarget[
            requestTarget.index(requestTarget.startIndex, offsetBy: lower.hasPrefix("http://") ? 7 : 8)...]
        guard let start = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
        let rest = afterScheme[start...]
        return rest.hasPrefix("?") ? "/" + rest : String(rest)
    }

    public func emit(_ message: ReplayMessage) {
        guard message.type == .request, let pending = prepare(message) else { return }
        if !reaperStarted.load(ordering: .relaxed) { startReaperIfNeeded() }
        let dropped = dispatch(pending, retry: false)
        statistics.updateOutput(slot) { counters in
            counters.accepted += 1
            if dropped { counters.droppedQueueFull += 1 }
        }
    }

    /// Sends on an idle connection, opens a new one while under the cap, or
    /// queues (a retry goes to the front, past the length limit). Returns
    /// true when the request was dropped.
    private func dispatch(_ pending: PendingRequest, retry: Bool) -> Bool {
        enum Action {
            case send(ReplayConnectionHandle)
            case connect, queued, dropped
        }
        let action: Action = state.withLock { state in
            if state.closing { return .dropped }
            if let idle = state.idle.popLast() {
                state.inFlight += 1
                return .send(idle.connection)
            }
            if state.connections < maximumConnections {
                state.connections += 1
                state.inFlight += 1
                return .connect
            }
            if retry {
                state.queue.prepend(pending)
                return .queued
            }
            if state.queue.count < options.queueLength {
                state.queue.append(pending)
                return .queued
            }
            return .dropped
        }
        switch action {
        case .send(let connection): connection.send(pending)
        case .connect: connect(with: pending)
        case .queued: break
        case .dropped: return true
        }
        return false
    }

    /// Sends an idempotent request again after its reused connection closed
    /// before any of the response arrived; counted as a retry.
    func retry(_ request: PendingRequest) {
        var again = request
        again.retried = true
        statistics.updateOutput(slot) { $0.retried += 1 }
        if dispatch(again, retry: true) { statistics.updateOutput(slot) { $0.failed += 1 } }
    }

    /// Counts a failed request and tells the operator once per reason.
    func recordFailure(timeout: Bool, reason: String?) {
        statistics.updateOutput(slot) { counters in
            counters.failed += 1
            if timeout { counters.timeouts += 1 }
            if let reason, counters.failureReasons.count < 10 || counters.failureReasons[reason] != nil {
                counters.failureReasons[reason, default: 0] += 1
            }
        }
        if let reason, let report = options.reportFailure {
            let first = reportedFailures.withLockedValue { $0.count < 10 && $0.insert(reason).inserted }
            if first { report("output \(name): \(reason)") }
        }
    }

    /// Every `workerTimeout`, closes connections idle that long while
    /// nothing waits, keeping `workersMin` (GoReplay's worker scaling).
    private func startReaperIfNeeded() {
        reaper.withLockedValue { task in
            guard task == nil, !state.withLock({ $0.closing }) else { return }
            reaperStarted.store(true, ordering: .relaxed)
            let period = TimeAmount(max(.milliseconds(50), options.workerTimeout))
            task = group.next().scheduleRepeatedTask(initialDelay: period, delay: period) { [weak self] _ in
                self?.closeIdleConnections()
            }
        }
    }

    func closeIdleConnections() {
        let limit = options.workerTimeout.nanoseconds
        let now = monotonicNanoseconds()
        let expired: [ReplayConnectionHandle] = state.withLock { state in
            guard state.queue.isEmpty, !state.closing else { return [] }
            var expired: [ReplayConnectionHandle] = []
            var remaining = state.connections
            while remaining > options.workersMin, let oldest = state.idle.first, now - oldest.since >= limit {
                state.idle.removeFirst()
                expired.append(oldest.connection)
                remaining -= 1
            }
            return expired
        }
        for connection in expired { connection.close() }
    }

    /// True once `close` gave up waiting: connections it closes are not retried.
    var isClosing: Bool { state.withLock { $0.closing } }

    /// Open connections and idle ones, for tests and stats.
    public var connectionCounts: (open: Int, idle: Int) {
        state.withLock { ($0.connections, $0.idle.count) }
    }

    /// Opens a connection and sends `first` on it: plain http on a `SocketLoop`, https through NIO.
    private func connect(with first: PendingRequest) {
        guard let sslContext else {
            connectPlain(with: first)
            return
        }
        let serverName = target.host.isIPAddress ? nil : target.host
        let connectTimeout = TimeAmount(options.timeout)
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tls = try NIOSSLClientHandler(context: sslContext, serverHostname: serverName)
                    try channel.pipeline.syncOperations.addHandler(tls)
                    // Made on the channel's loop and never leaves it: the pool holds a handle.
                    try channel.pipeline.syncOperations.addHandler(HTTPReplayConnection(output: self))
                }
            }
        let connected =
            literalAddress.map { bootstrap.connect(to: $0) } ?? bootstrap.connect(host: target.host, port: target.port)
        connected.whenComplete { result in
            switch result {
            case .success(let channel):
                channel.eventLoop.execute { self.started(channel, first: first) }
            case .failure(let error):
                self.connectFailed(Self.connectFailureCause(error))
            }
        }
    }

    private func connectPlain(with first: PendingRequest) {
        let loop: SocketLoop
        switch SocketLoopGroup.shared {
        case .success(let group): loop = group.next()
        case .failure(let error):
            connectFailed(error.description)
            return
        }
        if let literalAddress {
            loop.execute {
                PlainHTTPConnection.start(output: self, loop: loop, addresses: [literalAddress], first: first)
            }
            return
        }
        // getaddrinfo blocks: resolve off the loop, per connection, as NIO's resolver and Go's dialer do.
        let host = target.host
        let port = target.port
        DispatchQueue.global().async {
            switch Self.resolve(host: host, port: port) {
            case .success(let addresses):
                loop.execute { PlainHTTPConnection.start(output: self, loop: loop, addresses: addresses, first: first) }
            case .failure(let error):
                self.connectFailed(error.description)
            }
        }
    }

    /// Why a target's name gave no address.
    struct ResolutionError: Error, CustomStringConvertible {
        var description: String
    }

    /// Every TCP address of `host`, in getaddrinfo's order.
    static func resolve(host: String, port: Int) -> Result<[SocketAddress], ResolutionError> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_protocol = Int32(IPPROTO_TCP)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let list else {
            return .failure(
                ResolutionError(
                    description: "cannot resolve the name: " + String(cString: gai_strerror(status)).lowercased()))
        }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let current = entry {
            if let address = current.pointee.ai_addr {
                switch current.pointee.ai_family {
                case AF_INET:
                    let ipv4 = UnsafeRawPointer(address).load(as: sockaddr_in.self)
                    addresses.append(SocketAddress(ipv4, host: host))
                case AF_INET6:
                    let ipv6 = UnsafeRawPointer(address).load(as: sockaddr_in6.self)
                    addresses.append(SocketAddress(ipv6, host: host))
                default:
                    break
                }
            }
            entry = current.pointee.ai_next
        }
        if addresses.isEmpty { return .failure(ResolutionError(description: "cannot resolve the name: no address")) }
        return .success(addresses)
    }

    /// A plain connection opened: the pool can close it from now on.
    func connectionOpened(_ handle: ReplayConnectionHandle) {
        state.withLock { $0.live[handle.id] = handle }
    }

    /// On the new channel's event loop: registers its connection and sends its first request.
    private func started(_ channel: any Channel, first: PendingRequest) {
        guard let connection = try? channel.pipeline.syncOperations.handler(type: HTTPReplayConnection.self),
            let handle = connection.handle
        else {
            // Closed already, and its handler has reported the end: the request waits for another.
            requeue(first)
            releaseSlot()
            return
        }
        if channel.isActive { state.withLock { $0.live[handle.id] = handle } }
        connection.send(first)
    }

    /// Called on a connection's event loop when a response is done: the next
    /// queued request for it, or nil (it is then idle).
    func nextRequest(after connection: ReplayConnectionHandle) -> PendingRequest? {
        state.withLock { state in
            if !state.closing, let next = state.queue.popFirst() {
                return next
            }
            state.inFlight -= 1
            if !state.closing {
                state.idle.append(IdleConnection(connection: connection, since: monotonicNanoseconds()))
            }
            return nil
        }
    }

    /// A connection closed, or failed to open (`id` nil). Starts a
    /// replacement when requests are waiting.
    func connectionEnded(_ id: ObjectIdentifier?, hadRequest: Bool) {
        let next: PendingRequest? = state.withLock { state in
            if let id {
                state.live[id] = nil
                state.idle.removeAll { $0.connection.id == id }
            }
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
        state.withLock { state in state.queue.prepend(request) }
    }

    /// A connection gave up its request slot without a response; start a
    /// connection for waiting requests if the pool has room.
    func releaseSlot() {
        let next: PendingRequest? = state.withLock { state in
            state.inFlight -= 1
            guard !state.closing, state.connections < maximumConnections, let next = state.queue.popFirst() else {
                return nil
            }
            state.connections += 1
            state.inFlight += 1
            return next
        }
        if let next { connect(with: next) }
    }

    /// A connection hands its request to `retry` and gives up its slot;
    /// `retry` has already found the request a connection.
    func releaseSlotWithoutStarting() {
        state.withLock { $0.inFlight -= 1 }
    }

    /// A connection that never opened (refused, timed out, no address, no loop): its first request
    /// fails as "cannot connect to HOST:PORT: `cause`", and its slot goes to a waiting request.
    func connectFailed(_ cause: String) {
        recordFailure(timeout: false, reason: "cannot connect to \(target.host):\(target.port): \(cause)")
        connectionEnded(nil, hadRequest: true)
    }

    /// Why NIO could not connect, in a few words.
    static func connectFailureCause(_ error: any Error) -> String {
        var error = error
        if let connection = error as? NIOConnectionError, let first = connection.connectionErrors.first {
            error = first.error // happy eyeballs wraps the socket's error
        }
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        if case .connectTimeout = error as? ChannelError { return "connect timed out (--output-http-timeout)" }
        return "\(error)"
    }

    /// A one-line cause for a channel error; for TLS, the flag that helps.
    func describeChannelError(_ error: any Error) -> String {
        let text = "\(error)"
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            if text.contains("CERTIFICATE_VERIFY_FAILED") || text.lowercased().contains("certificate")
                || error as? NIOSSLExtraError == .failedToValidateHostname
            {
                return "TLS: the certificate of \(target.hostHeader) does not verify (\(text)); "
                    + "GoReplay 0.16 never verified certificates: add --output-http-skip-verify to replay to this target"
            }
            return "TLS handshake with \(target.hostHeader) failed: \(text)"
        }
        if let error = error as? IOError {
            return "connection error: " + String(cString: strerror(error.errnoCode)).lowercased()
        }
        return "connection error: \(text)"
    }

    /// Adds a connection's locally gathered response counts.
    func recordResponses(_ batch: ResponseBatch) {
        guard batch.responses > 0 else { return }
        statistics.updateOutput(slot) { counters in
            counters.sent += batch.responses
            counters.responses += batch.responses
            for (status, count) in batch.statusCodes { counters.statusCodes[status, default: 0] += count }
            for latency in batch.latencies {
                counters.latency.record(nanoseconds: latency.nanoseconds, bucket: latency.bucket)
            }
        }
    }

    public func recordRateLimited() { statistics.updateOutput(slot) { $0.droppedRateLimit += 1 } }

    /// Queue length and connections, for stats lines.
    public var queueLength: Int { state.withLock { $0.queue.count } }

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
            let busy = state.withLock { $0.inFlight > 0 || !$0.queue.isEmpty }
            if !busy { break }
            try? await Task.sleep(for: .milliseconds(1))
        }
        reaper.withLockedValue { task in
            task?.cancel()
            task = nil
        }
        let (connections, abandoned) = state.withLock { state in
            state.closing = true
            let abandoned = state.queue.count
            state.queue.removeAll()
            state.idle.removeAll()
            return (Array(state.live.values), abandoned)
        }
        if abandoned > 0 { statistics.updateOutput(slot) { $0.droppedQueueFull += abandoned } }
        for connection in connections { connection.close() }
        // Let the closes run so counters settle.
        let settle = ContinuousClock.now + .seconds(1)
        while ContinuousClock.now < settle, state.withLock({ $0.connections > 0 }) {
            try? await Task.sleep(for: .milliseconds(1))
        }
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
