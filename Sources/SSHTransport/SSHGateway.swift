import CLibSSH2
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One authenticated session on a jump host (bastion) that carries the connections of every host
/// behind it as `direct-tcpip` channels.
///
/// Each tunnel is a `socketpair(AF_UNIX, SOCK_STREAM)`: the inner ``SSHSession`` runs libssh2 on one
/// end as if it were a TCP socket, and the gateway's pump copies bytes between the other end and the
/// channel (the shape of OpenSSH's `ssh -W`; libssh2-notes §2.9). The pump is one task per gateway,
/// waiting on the ``SSHReactor`` for the bastion socket and every tunnel at once, so hundreds of hosts
/// behind one gateway cost one login on it and no thread per host.
///
/// A gateway behind a gateway (a chain) is a gateway whose own socket is a tunnel of the outer one.
/// If the bastion connection drops, every tunnel is closed at once, so the sessions behind it see EOF
/// and fail instead of waiting; new tunnels fail immediately with the reason.
public final class SSHGateway: Sendable {
    /// The jump host and login.
    public let endpoint: SSHEndpoint
    /// The jump host's key as OpenSSH prints it, e.g. `SHA256:abc…`.
    public let hostKeyFingerprint: String
    /// The gateway this one is reached through, for chains.
    public let outer: SSHGateway?
    /// Channel opens waiting for a lane, shared by every lane.
    let queue: GatewayOpenQueue
    /// Logins on the jump host that carry tunnels ("lanes"): the first one, and more added while
    /// opens queue up. libssh2 1.10 keeps one channel open in flight per session (its open state is
    /// session-wide), so one login opens at most one tunnel per round trip: 33 a second at 30 ms.
    private let lanes: Mutex<Lanes>
    private let options: SSHClientOptions
    private let reactor: SSHReactor
    private let logger: Logger

    struct Lanes {
        var running: [(pump: GatewayPump, task: Task<Void, Never>)] = []
        /// Logins being added now, and every task that added one (awaited by close).
        var connecting = 0
        var adders: [Task<Void, Never>] = []
        /// A lane that failed to log in stops the adding (the jump host's MaxStartups, for one).
        var addingStopped = false
    }

    private init(endpoint: SSHEndpoint, fingerprint: String, outer: SSHGateway?, first: GatewayPump,
                 queue: GatewayOpenQueue, options: SSHClientOptions, reactor: SSHReactor, logger: Logger) {
        self.endpoint = endpoint
        self.hostKeyFingerprint = fingerprint
        self.outer = outer
        self.queue = queue
        self.options = options
        self.reactor = reactor
        self.logger = logger
        lanes = Mutex(Lanes(running: [(first, Task.detached { await first.run() })]))
    }

    /// Connects a chain of jump hosts, outermost first, each through the previous one, and returns the
    /// innermost (which keeps the outer ones open). Each hop gets the full `options.connectTimeout`
    /// for its TCP connect or channel open, handshake, host-key check and authentication, and its host
    /// key is checked strictly against `options.knownHostsFiles`, like any host.
    public static func connect(
        chain: [SSHEndpoint], options: SSHClientOptions, reactor: SSHReactor, logger: Logger
    ) async throws -> SSHGateway {
        guard let first = chain.first else {
            throw SSHError(endpoint: SSHEndpoint(host: "", user: ""), operation: .connect, kind: .connectionFailed,
                           message: "an empty gateway chain")
        }
        var gateway = try await connect(to: first, via: nil, options: options, reactor: reactor, logger: logger)
        for hop in chain.dropFirst() {
            do {
                gateway = try await connect(to: hop, via: gateway, options: options, reactor: reactor, logger: logger)
            } catch {
                await gateway.close()
                throw error
            }
        }
        return gateway
    }

    /// Connects one jump host, directly or through `outer`.
    public static func connect(
        to endpoint: SSHEndpoint, via outer: SSHGateway?, options: SSHClientOptions, reactor: SSHReactor,
        logger: Logger
    ) async throws -> SSHGateway {
        let queue = GatewayOpenQueue()
        let (pump, fingerprint) = try await connectLane(
            to: endpoint, via: outer, queue: queue, options: options, reactor: reactor, logger: logger)
        logger.debug("gateway ready", metadata: ["gateway": "\(endpoint)", "via": "\(outer.map { "\($0.endpoint)" } ?? "direct")"])
        return SSHGateway(endpoint: endpoint, fingerprint: fingerprint, outer: outer, first: pump, queue: queue,
                          options: options, reactor: reactor, logger: logger)
    }

    /// One login on the jump host and its pump.
    private static func connectLane(
        to endpoint: SSHEndpoint, via outer: SSHGateway?, queue: GatewayOpenQueue, options: SSHClientOptions,
        reactor: SSHReactor, logger: Logger
    ) async throws -> (GatewayPump, fingerprint: String) {
        let deadline = ContinuousClock.now + options.connectTimeout
        let socket = try await TCPConnector.open(to: endpoint, via: outer, deadline: deadline, reactor: reactor)
        // The hop counts its own keepalives (ServerAliveInterval/CountMax, like every host): a gateway
        // that stalls fails every tunnel within the bound, even behind hosts that send none.
        let (connection, fingerprint, _) = try await SessionConnection.establish(
            socket: socket, endpoint: endpoint, options: options, reactor: reactor, logger: logger,
            deadline: deadline, gateway: outer)
        do {
            return (try GatewayPump(connection: connection, outer: outer, queue: queue), fingerprint)
        } catch {
            connection.free()
            throw error
        }
    }

    /// Why the gateway stopped working (connection dropped), or nil while it works.
    public var failureReason: String? { queue.failureReason }

    /// Tunnels currently open through this gateway.
    public var openTunnelCount: Int { lanes.withLock { $0.running.reduce(0) { $0 + $1.pump.openTunnelCount } } }

    /// Logins on the jump host carrying tunnels now (1 until opens queue up; at most
    /// `options.gatewayConnections`).
    public var connectionCount: Int { lanes.withLock { $0.running.count } }

    /// Opens a `direct-tcpip` channel to `target.host:target.port` (resolved and connected to by the
    /// gateway) and returns our end of a socket pair carrying it, non-blocking and close-on-exec.
    /// Each lane has one open in flight at a time; established tunnels keep flowing meanwhile.
    func openTunnel(to target: SSHEndpoint, deadline: ContinuousClock.Instant) async throws -> Int32 {
        addLaneIfBacklogged()
        return try await queue.openTunnel(to: target, deadline: deadline, gateway: endpoint) { [self] in
            for lane in lanes.withLock({ $0.running.map(\.pump) }) { lane.wake() }
        }
    }

    /// Opens waiting per lane before another login is added: a lane opens a tunnel per round trip,
    /// so a short queue clears in a few; a run of a few hosts (up to 8 at once) keeps one login.
    private static let backlogPerLane = 8

    private func addLaneIfBacklogged() {
        let waiting = queue.waitingCount
        let add: Bool = lanes.withLock { l in
            let total = l.running.count + l.connecting
            guard !l.addingStopped, total < options.gatewayConnections, waiting >= Self.backlogPerLane * total,
                  queue.failureReason == nil, !queue.isClosing
            else { return false }
            l.connecting += 1
            return true
        }
        guard add else { return }
        let task = Task.detached { [self] in
            defer { lanes.withLock { $0.connecting -= 1 } }
            do {
                let (pump, _) = try await Self.connectLane(
                    to: endpoint, via: outer, queue: queue, options: options, reactor: reactor, logger: logger)
                let added = lanes.withLock { l -> Bool in
                    guard !queue.isClosing, queue.failureReason == nil else { return false }
                    l.running.append((pump, Task.detached { await pump.run() }))
                    return true
                }
                if added {
                    pump.wake()
                    logger.debug("gateway lane added", metadata: ["gateway": "\(endpoint)"])
                } else {
                    pump.connection.free()
                }
            } catch {
                lanes.withLock { $0.addingStopped = true }
                logger.info("another login on the gateway \(endpoint) failed, so its tunnels stay on the logins it has: \(error)")
            }
        }
        lanes.withLock { $0.adders.append(task) }
    }

    /// Closes every tunnel and the bastion sessions (then the outer gateways of a chain). Idempotent.
    public func close() async {
        queue.requestClose()
        // Adders first: one finishing now sees the close and frees its login instead of adding it.
        for task in lanes.withLock({ $0.adders }) {
            task.cancel()
            await task.value
        }
        let running = lanes.withLock { $0.running }
        for lane in running { lane.pump.wake() }
        for lane in running { await lane.task.value }
        await outer?.close()
    }
}

extension SSHError {
    /// This error, which happened on a jump host, as seen by `target` behind it: the message names
    /// the host the gateway was needed for ("… (gateway for cache-1)").
    public func asGatewayError(for target: String) -> SSHError {
        SSHError(endpoint: endpoint, operation: operation, kind: kind, code: code,
                 message: "\(message) (gateway for \(target))", remedy: remedy)
    }
}

/// A tunnel: a channel on the bastion session and our end of its socket pair. Pump-task only.
final class GatewayTunnel {
    let channel: OpaquePointer
    let localFD: Int32
    let target: SSHEndpoint
    /// Bytes read from the local end, not yet accepted by the channel.
    var toChannel: [UInt8] = []
    var toChannelOffset = 0
    /// Bytes read from the channel, not yet written to the local end.
    var toLocal: [UInt8] = []
    var toLocalOffset = 0
    /// The inner session closed its end (or it failed): close the channel.
    var localEOF = false
    /// The far side sent EOF: the local end has been shut down for writing.
    var channelEOF = false
    /// Closing the channel; the local end is closed already.
    var closing = false
    /// The channel is closed and may be freed.
    var closed = false

    init(channel: OpaquePointer, localFD: Int32, target: SSHEndpoint) {
        self.channel = channel
        self.localFD = localFD
        self.target = target
    }

    var hasDataForChannel: Bool { toChannelOffset < toChannel.count }
    var hasDataForLocal: Bool { toLocalOffset < toLocal.count }
}

/// Channel opens waiting for a lane, and the gateway's fate: shared by every lane (pump) of one
/// gateway. Callers enqueue; whichever lane has no open in flight takes the next.
final class GatewayOpenQueue: Sendable {
    /// A caller waiting for a tunnel.
    struct OpenRequest {
        var target: SSHEndpoint
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Int32, any Error>
    }

    struct State {
        var requests: [UInt64: OpenRequest] = [:]
        var queue: [UInt64] = []
        var queueHead = 0
        var cancelledEarly: Set<UInt64> = []
        var nextID: UInt64 = 0
        var failure: String?
        var closeRequested = false
    }

    let state = Mutex(State())

    var failureReason: String? { state.withLock { $0.failure } }
    var isClosing: Bool { state.withLock { $0.closeRequested } }
    /// Opens not yet answered (queued, or in flight on a lane).
    var waitingCount: Int { state.withLock { $0.requests.count } }

    func requestClose() {
        state.withLock { $0.closeRequested = true }
    }

    /// Enqueues an open and waits for a lane to complete it; `wake` tells the lanes.
    func openTunnel(
        to target: SSHEndpoint, deadline: ContinuousClock.Instant, gateway: SSHEndpoint, wake: () -> Void
    ) async throws -> Int32 {
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
                let refusal: (any Error)? = state.withLock { s in
                    if s.cancelledEarly.remove(id) != nil { return CancellationError() }
                    if let failure = s.failure {
                        return SSHError(
                            endpoint: gateway, operation: .connect, kind: .sessionClosed,
                            message: "gateway is down (\(failure)); cannot reach \(target.hostAndPort) through it")
                    }
                    if s.closeRequested {
                        return SSHError(endpoint: gateway, operation: .connect, kind: .sessionClosed,
                                        message: "gateway was closed; cannot reach \(target.hostAndPort) through it")
                    }
                    s.requests[id] = OpenRequest(target: target, deadline: deadline, continuation: continuation)
                    s.queue.append(id)
                    return nil
                }
                if let refusal { continuation.resume(throwing: refusal) } else { wake() }
            }
        } onCancel: {
            let request = state.withLock { s -> OpenRequest? in
                if let r = s.requests.removeValue(forKey: id) { return r }
                s.cancelledEarly.insert(id)
                return nil
            }
            request?.continuation.resume(throwing: CancellationError())
        }
    }

    /// The next open still waited for, taken off the queue (it stays in `requests` until resolved).
    func takeNext() -> (UInt64, SSHEndpoint)? {
        state.withLock { s in
            while s.queueHead < s.queue.count {
                let id = s.queue[s.queueHead]
                s.queueHead += 1
                if s.queueHead > 1024 && s.queueHead * 2 > s.queue.count {
                    s.queue.removeFirst(s.queueHead)
                    s.queueHead = 0
                }
                if let r = s.requests[id] { return (id, r.target) }
            }
            return nil
        }
    }

    /// Hands the result to the waiting caller; false if it is no longer waiting.
    @discardableResult
    func resolve(_ id: UInt64, with result: Result<Int32, SSHError>) -> Bool {
        guard let request = state.withLock({ $0.requests.removeValue(forKey: id) }) else { return false }
        switch result {
        case .success(let fd): request.continuation.resume(returning: fd)
        case .failure(let error): request.continuation.resume(throwing: error)
        }
        return true
    }

    /// Removes and returns the requests whose deadline passed.
    func expired(now: ContinuousClock.Instant) -> [OpenRequest] {
        state.withLock { s in
            let ids = s.requests.filter { $0.value.deadline <= now }.map(\.key)
            return ids.compactMap { s.requests.removeValue(forKey: $0) }
        }
    }

    var nearestDeadline: ContinuousClock.Instant? { state.withLock { s in s.requests.values.map(\.deadline).min() } }

    /// Marks the gateway failed (first reason wins) and closing; returns every caller still waiting.
    func fail(_ failure: String?) -> [OpenRequest] {
        state.withLock { s in
            if s.failure == nil { s.failure = failure }
            s.closeRequested = true
            s.queue.removeAll()
            s.queueHead = 0
            let all = Array(s.requests.values)
            s.requests.removeAll()
            return all
        }
    }
}

/// One login on the gateway (a lane) and its pump loop.
///
/// `@unchecked Sendable`: the libssh2 session, the tunnels and the in-flight open are touched only by
/// the pump task (after connect); other tasks only use the queue, `tunnelCount` (under their
/// mutexes) and the wake pipe.
final class GatewayPump: @unchecked Sendable {
    /// A libssh2 call that returned `EAGAIN` with a packet half-sent: it must be repeated, with the same
    /// arguments, before any other call on the session (libssh2-notes §2.3).
    enum PendingCall {
        case open
        case read(GatewayTunnel)
        case write(GatewayTunnel)
        case close(GatewayTunnel)
    }

    let connection: SessionConnection
    let outer: SSHGateway?
    let queue: GatewayOpenQueue
    private let tunnelCount = Mutex(0)
    private let wakeRead: Int32
    private let wakeWrite: Int32

    // Pump-task state.
    private var tunnels: [GatewayTunnel] = []
    private var inFlight: (id: UInt64, target: SSHEndpoint)?
    private var pending: PendingCall?
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    init(connection: SessionConnection, outer: SSHGateway?, queue: GatewayOpenQueue) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw SSHError(endpoint: connection.endpoint, operation: .connect, kind: .protocolError,
                           message: "cannot create the gateway's wake-up pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        self.connection = connection
        self.outer = outer
        self.queue = queue
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    var openTunnelCount: Int { tunnelCount.withLock { $0 } }

    func wake() {
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)  // a full pipe already means "wake up"
    }

    private var endpoint: SSHEndpoint { connection.endpoint }
    private var session: OpaquePointer { connection.session }

    /// True when the last `EAGAIN` left a packet half-sent.
    private var blockedOutbound: Bool {
        libssh2_session_block_directions(session) & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0
    }

    /// The pump loop: moves bytes until the gateway is closed or its connection fails.
    func run() async {
        var failure: String?
        while true {
            if queue.isClosing {
                // Another lane's failure ends this one too: it is the same jump host.
                failure = queue.failureReason
                break
            }
            expireRequests()
            do {
                var rounds = 0
                // Sweep until nothing moves; bounded so a firehose on one tunnel cannot starve the wait.
                while try sweep(), rounds < 64 { rounds += 1 }
            } catch {
                failure = error.reason
                break
            }
            if hasHiddenWork() { continue }
            if tunnels.isEmpty && inFlight == nil {
                // Idle: nothing reads the socket, so replies would go unseen; count from the next use.
                connection.restartKeepaliveCount()
            } else if pending == nil {
                // (Never between a half-sent packet and its retry.)
                do {
                    _ = try connection.checkAlive()
                } catch {
                    failure = (error as? SSHError)?.message ?? "\(error)"
                    break
                }
            }
            do {
                try await waitForWork()
            } catch {
                failure = "the SSH event loop stopped"
                break
            }
            if tunnels.isEmpty && inFlight == nil, let reason = bastionHungUp() {
                failure = reason
                break
            }
        }
        await shutDown(failure: failure)
    }

    private struct GatewayFailure: Error {
        var reason: String
    }

    /// Treats an error from a libssh2 call as the end of the bastion connection unless it concerns
    /// one channel only (then returns false, and the caller closes that tunnel).
    private func check(_ rc: Int) throws(GatewayFailure) -> Bool {
        switch Int32(rc) {
        case LIBSSH2_ERROR_CHANNEL_CLOSED, LIBSSH2_ERROR_CHANNEL_EOF_SENT, LIBSSH2_ERROR_CHANNEL_FAILURE,
            LIBSSH2_ERROR_CHANNEL_UNKNOWN, LIBSSH2_ERROR_CHANNEL_WINDOW_EXCEEDED,
            LIBSSH2_ERROR_CHANNEL_PACKET_EXCEEDED, LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED:
            return false
        default:
            // Which channel noticed does not matter: the whole connection is gone.
            var reason = lastError(session).message
            if let outerFailure = outer?.failureReason { reason += " (its own gateway failed: \(outerFailure))" }
            throw GatewayFailure(reason: "connection to the gateway lost: \(reason)")
        }
    }

    /// One pass over the pending open and every tunnel; returns whether anything moved.
    private func sweep() throws(GatewayFailure) -> Bool {
        var progressed = false
        if let call = pending {
            let rc: Int
            switch call {
            case .open: rc = 0  // retried below
            case .read(let t): rc = readChannel(t)
            case .write(let t): rc = writeChannel(t)
            case .close(let t): rc = closeChannel(t)
            }
            if case .open = call {} else {
                if rc == Int(LIBSSH2_ERROR_EAGAIN) && blockedOutbound { return false }
                pending = nil
                if rc < 0 && rc != Int(LIBSSH2_ERROR_EAGAIN) {
                    if case .read(let t) = call, try !check(rc) { t.localEOF = true }
                    if case .write(let t) = call, try !check(rc) { t.localEOF = true }
                    if case .close(let t) = call, try !check(rc) { t.closed = true }
                }
                progressed = true
            }
        }
        if case .open? = pending {
            if try advanceOpen() { progressed = true }
            if pending != nil { return progressed }
        }
        for t in tunnels {
            if try pumpTunnel(t) { progressed = true }
            if pending != nil { return progressed }
        }
        // After the reads: one of them may have taken the open's confirmation off the socket.
        if try advanceOpen() { progressed = true }
        if pending != nil { return progressed }
        let before = tunnels.count
        tunnels.removeAll { t in
            guard t.closed else { return false }
            _ = libssh2_channel_free(t.channel)
            return true
        }
        if tunnels.count != before {
            progressed = true
            let count = tunnels.count
            tunnelCount.withLock { $0 = count }
        }
        return progressed
    }

    /// Starts or continues the one channel open that may be pending on the session.
    private func advanceOpen() throws(GatewayFailure) -> Bool {
        if inFlight == nil {
            guard let next = queue.takeNext() else { return false }
            inFlight = (next.0, next.1)
        }
        guard let (id, target) = inFlight else { return false }
        let channel = target.host.withCString { host in
            libssh2_channel_direct_tcpip_ex(session, host, Int32(target.port), "127.0.0.1", 22)
        }
        if channel == nil {
            let code = libssh2_session_last_errno(session)
            if code == LIBSSH2_ERROR_EAGAIN {
                if blockedOutbound { pending = .open } else if case .open? = pending { pending = nil }
                return false
            }
            if case .open? = pending { pending = nil }
            inFlight = nil
            let message = lastError(session).message
            if code == LIBSSH2_ERROR_CHANNEL_FAILURE || code == LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED
                || code == LIBSSH2_ERROR_CHANNEL_UNKNOWN {
                resolve(id, with: .failure(SSHError(
                    endpoint: endpoint, operation: .connect, kind: .connectionFailed, code: code,
                    message: "the gateway could not connect to \(target.hostAndPort): \(message)",
                    remedy: "check the host is up and reachable from the gateway, and that the gateway allows TCP forwarding")))
                return true
            }
            _ = try check(Int(code))
            return true
        }
        if case .open? = pending { pending = nil }
        inFlight = nil
        guard let channel else { return true }
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            let reason = String(cString: strerror(errno))
            let tunnel = GatewayTunnel(channel: channel, localFD: -1, target: target)
            tunnel.localEOF = true
            tunnels.append(tunnel)
            resolve(id, with: .failure(SSHError(
                endpoint: endpoint, operation: .connect, kind: .connectionFailed,
                message: "cannot create a socket pair for a tunnel to \(target.hostAndPort): \(reason) (\(openFileLimitText()))",
                remedy: "lower the parallelism (-P) or raise the open-file limit (ulimit -n)")))
            return true
        }
        let tunnel = GatewayTunnel(channel: channel, localFD: pair[0], target: target)
        tunnels.append(tunnel)
        let count = tunnels.count
        tunnelCount.withLock { $0 = count }
        if !resolve(id, with: .success(pair[1])) {
            // The caller gave up (timeout or cancellation) while the open was on its way.
            Glibc.close(pair[1])
            tunnel.localEOF = true
        }
        return true
    }

    @discardableResult
    private func resolve(_ id: UInt64, with result: Result<Int32, SSHError>) -> Bool {
        queue.resolve(id, with: result)
    }

    /// Fails requests whose deadline passed. An open already sent stays in flight (abandoning it would
    /// leave libssh2's per-session open state behind); its channel is closed when it arrives.
    private func expireRequests() {
        for request in queue.expired(now: .now) {
            request.continuation.resume(throwing: SSHError(
                endpoint: endpoint, operation: .connect, kind: .connectTimeout,
                message: "opening a channel to \(request.target.hostAndPort) through the gateway timed out",
                remedy: "check the host is up and reachable from the gateway, or raise the connect timeout"))
        }
    }

    /// Moves what can be moved for one tunnel without blocking.
    private func pumpTunnel(_ t: GatewayTunnel) throws(GatewayFailure) -> Bool {
        if t.closed { return false }
        var progressed = false
        if !t.closing {
            // Channel → local.
            while true {
                if t.hasDataForLocal {
                    let n = t.toLocal[t.toLocalOffset...].withUnsafeBytes { raw in
                        Glibc.send(t.localFD, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                    }
                    if n > 0 {
                        t.toLocalOffset += n
                        progressed = true
                        continue
                    }
                    if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
                    t.localEOF = true  // EPIPE/ECONNRESET: the inner session is gone
                    break
                }
                if t.channelEOF { break }
                let rc = readChannel(t)
                if rc > 0 {
                    progressed = true
                    continue
                }
                if rc == Int(LIBSSH2_ERROR_EAGAIN) {
                    if blockedOutbound {
                        pending = .read(t)
                        return progressed
                    }
                    break
                }
                if rc == 0 {
                    if libssh2_channel_eof(t.channel) != 0 {
                        t.channelEOF = true
                        Glibc.shutdown(t.localFD, Int32(SHUT_WR))
                        progressed = true
                    }
                    break
                }
                if try !check(rc) {
                    t.channelEOF = true
                    t.localEOF = true
                    progressed = true
                }
                break
            }
            // Local → channel.
            while !t.localEOF {
                if t.hasDataForChannel {
                    let rc = writeChannel(t)
                    if rc > 0 {
                        progressed = true
                        continue
                    }
                    if rc == Int(LIBSSH2_ERROR_EAGAIN) {
                        if blockedOutbound {
                            pending = .write(t)
                            return progressed
                        }
                        break
                    }
                    if try !check(rc) { t.localEOF = true }
                    progressed = true
                    break
                }
                let n = buffer.withUnsafeMutableBytes { raw in
                    Glibc.recv(t.localFD, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT))
                }
                if n > 0 {
                    t.toChannel = Array(buffer[0..<n])
                    t.toChannelOffset = 0
                    progressed = true
                    continue
                }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
                t.localEOF = true  // EOF or error: the inner session closed its socket
                progressed = true
            }
            if t.localEOF {
                // Nobody reads this tunnel any more; what is still queued for the channel can go too.
                t.closing = true
                if t.localFD >= 0 { Glibc.close(t.localFD) }
                progressed = true
            }
        }
        if t.closing && !t.closed {
            let rc = closeChannel(t)
            if rc == Int(LIBSSH2_ERROR_EAGAIN) {
                if blockedOutbound { pending = .close(t) }
                return progressed
            }
            if rc < 0 { _ = try check(rc) }
            t.closed = true
            progressed = true
        }
        return progressed
    }

    private func readChannel(_ t: GatewayTunnel) -> Int {
        let n = buffer.withUnsafeMutableBytes { raw in
            libssh2_channel_read_ex(t.channel, 0, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
        }
        if n > 0 {
            t.toLocal = Array(buffer[0..<n])
            t.toLocalOffset = 0
        }
        return n
    }

    private func writeChannel(_ t: GatewayTunnel) -> Int {
        let n = t.toChannel[t.toChannelOffset...].withUnsafeBytes { raw in
            libssh2_channel_write_ex(t.channel, 0, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
        }
        if n > 0 { t.toChannelOffset += n }
        return n
    }

    private func closeChannel(_ t: GatewayTunnel) -> Int {
        Int(libssh2_channel_close(t.channel))
    }

    /// Data or EOF that another channel's read pulled off the socket into this channel's queue, or a
    /// window that reopened: the socket will not become readable for it, so sweep again now.
    private func hasHiddenWork() -> Bool {
        if pending != nil { return false }
        for t in tunnels where !t.closing {
            if !t.hasDataForLocal && !t.channelEOF
                && (libssh2_poll_channel_read(t.channel, 0) != 0 || libssh2_channel_eof(t.channel) != 0) {
                return true
            }
            if t.hasDataForChannel && libssh2_channel_window_write_ex(t.channel, nil) > 0 { return true }
        }
        return false
    }

    /// Waits for the bastion socket, any tunnel's local end, the wake-up pipe or the nearest deadline.
    private func waitForWork() async throws {
        var requests = [PollRequest(fd: wakeRead, events: Int16(POLLIN))]
        var bastionEvents: Int16 = 0
        let directions = libssh2_session_block_directions(session)
        if directions & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { bastionEvents |= Int16(POLLOUT) }
        if !tunnels.isEmpty || inFlight != nil || directions & LIBSSH2_SESSION_BLOCK_INBOUND != 0 {
            bastionEvents |= Int16(POLLIN)
        } else {
            // Idle: nothing must consume the socket, but a hang-up must still wake us.
            bastionEvents |= Int16(0x2000)  // POLLRDHUP
        }
        requests.append(PollRequest(fd: connection.socket, events: bastionEvents))
        var closing = false
        if pending == nil {
            for t in tunnels {
                if t.closing {
                    closing = true
                    continue
                }
                var events: Int16 = 0
                if t.hasDataForLocal { events |= Int16(POLLOUT) }
                if !t.localEOF && !t.hasDataForChannel { events |= Int16(POLLIN) }
                if events != 0 { requests.append(PollRequest(fd: t.localFD, events: events)) }
            }
        }
        var deadline = queue.nearestDeadline
        // A channel close waits for the far side's close, which another channel's read may consume:
        // look again soon rather than wait for the socket.
        let cap = ContinuousClock.now + (closing ? .milliseconds(50) : .seconds(1))
        if deadline.map({ cap < $0 }) ?? true { deadline = cap }
        _ = try await connection.reactor.waitForAny(requests, deadline: deadline, cancellable: false)
        var sink = [UInt8](repeating: 0, count: 64)
        while Glibc.read(wakeRead, &sink, sink.count) > 0 {}
    }

    /// With no channel to read, libssh2 never notices a dropped connection: ask the socket directly.
    private func bastionHungUp() -> String? {
        var fd = pollfd(fd: connection.socket, events: Int16(0x2000), revents: 0)
        guard poll(&fd, 1, 0) > 0, fd.revents & Int16(0x2000 | POLLHUP | POLLERR | POLLNVAL) != 0 else { return nil }
        var reason = "the gateway closed the connection"
        if let outerFailure = outer?.failureReason { reason += " (its own gateway failed: \(outerFailure))" }
        return reason
    }

    /// Ends every tunnel (the sessions behind see EOF at once), fails every waiting caller, then
    /// closes the bastion session: politely when closing, at once when it failed.
    private func shutDown(failure: String?) async {
        let waiting = queue.fail(failure)
        tunnelCount.withLock { $0 = 0 }
        for t in tunnels where !t.closing && t.localFD >= 0 {
            Glibc.shutdown(t.localFD, Int32(SHUT_RDWR))
            Glibc.close(t.localFD)
        }
        let reason = failure ?? "the gateway was closed"
        for request in waiting {
            request.continuation.resume(throwing: SSHError(
                endpoint: endpoint, operation: .connect, kind: .sessionClosed,
                message: "cannot reach \(request.target.hostAndPort): \(reason)"))
        }
        tunnels.removeAll()
        if failure == nil {
            await connection.closeGracefully()
        } else {
            connection.free()
        }
    }
}
