import CLibSSH2
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - The pump (one per login on the jump host)

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
            throw SSHError(
                endpoint: connection.endpoint, operation: .connect, kind: .protocolError,
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
        _ = Glibc.write(wakeWrite, &byte, 1) // a full pipe already means "wake up"
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
            case .open: rc = 0 // retried below
            case .read(let t): rc = readChannel(t)
            case .write(let t): rc = writeChannel(t)
            case .close(let t): rc = closeChannel(t)
            }
            if case .open = call {
            } else {
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
                || code == LIBSSH2_ERROR_CHANNEL_UNKNOWN
            {
                resolve(
                    id,
                    with: .failure(
                        SSHError(
                            endpoint: endpoint, operation: .connect, kind: .connectionFailed, code: code,
                            message: "the gateway could not connect to \(target.hostAndPort): \(message)",
                            remedy:
                                "check the host is up and reachable from the gateway, and that the gateway allows TCP forwarding"
                        )))
                return true
            }
            _ = try check(Int(code))
            return true
        }
        if case .open? = pending { pending = nil }
        inFlight = nil
        guard let channel else { return true }
        var pair: [Int32] = [0, 0]
        guard
            socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0, &pair)
                == 0
        else {
            let reason = String(cString: strerror(errno))
            let tunnel = GatewayTunnel(channel: channel, localFD: -1, target: target)
            tunnel.localEOF = true
            tunnels.append(tunnel)
            resolve(
                id,
                with: .failure(
                    SSHError(
                        endpoint: endpoint, operation: .connect, kind: .connectionFailed,
                        message:
                            "cannot create a socket pair for a tunnel to \(target.hostAndPort): \(reason) (\(openFileLimitText()))",
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
            request.continuation.resume(
                throwing: SSHError(
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
                    t.localEOF = true // EPIPE/ECONNRESET: the inner session is gone
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
                t.localEOF = true // EOF or error: the inner session closed its socket
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
                && (libssh2_poll_channel_read(t.channel, 0) != 0 || libssh2_channel_eof(t.channel) != 0)
            {
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
            bastionEvents |= Int16(0x2000) // POLLRDHUP
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
            request.continuation.resume(
                throwing: SSHError(
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
