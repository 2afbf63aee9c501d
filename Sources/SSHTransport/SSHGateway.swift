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

    private init(
        endpoint: SSHEndpoint, fingerprint: String, outer: SSHGateway?, first: GatewayPump,
        queue: GatewayOpenQueue, options: SSHClientOptions, reactor: SSHReactor, logger: Logger
    ) {
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
            throw SSHError(
                endpoint: SSHEndpoint(host: "", user: ""), operation: .connect, kind: .connectionFailed,
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
        logger.debug(
            "gateway ready",
            metadata: ["gateway": "\(endpoint)", "via": "\(outer.map { "\($0.endpoint)" } ?? "direct")"])
        return SSHGateway(
            endpoint: endpoint, fingerprint: fingerprint, outer: outer, first: pump, queue: queue,
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
                logger.info(
                    "another login on the gateway \(endpoint) failed, so its tunnels stay on the logins it has: \(error)"
                )
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
        SSHError(
            endpoint: endpoint, operation: operation, kind: kind, code: code,
            message: "\(message) (gateway for \(target))", remedy: remedy)
    }
}

// MARK: - Channel opens waiting for a lane

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
                        return SSHError(
                            endpoint: gateway, operation: .connect, kind: .sessionClosed,
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
