import CLibSSH2
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// A libssh2 session, its socket and SFTP handle.
///
/// `@unchecked Sendable` because the compiler cannot check the confinement: every member is touched
/// only by the task holding the owning ``SSHSession``'s lock (or, during connect, by the one task
/// building it), which is the only way libssh2 handles may be used (never from two threads at once).
final class SessionConnection: @unchecked Sendable {
    let session: OpaquePointer
    let socket: Int32
    let endpoint: SSHEndpoint
    let reactor: SSHReactor
    let logger: Logger
    /// OpenSSH's `ServerAliveInterval`: after this long without a byte from the server, send a
    /// keepalive that wants a reply; nil sends none (and never gives up on a silent server).
    let keepaliveInterval: Duration?
    /// OpenSSH's `ServerAliveCountMax`: unanswered keepalives before the connection counts as lost.
    let keepaliveCountMax: Int
    /// The gateway whose channel carries this session's socket, if any.
    let gateway: SSHGateway?
    /// The receive callback's state: when the last byte arrived from the server, and bytes read
    /// ahead (see ``ReceiveState``).
    private let receiveState: UnsafeMutablePointer<ReceiveState>
    /// `lastReceived` when keepalives were last counted; any change means the server answered.
    private var receivedAtLastCount: Int64
    /// Keepalives sent since the server was last heard from.
    private(set) var keepalivesUnanswered = 0
    /// When the next keepalive is due (or the connection is declared lost).
    private var nextKeepalive: ContinuousClock.Instant?
    /// Keepalives start only once the session is established (the connect deadline covers before).
    var keepalivesStarted = false
    var sftp: OpaquePointer?
    /// Set when the session can no longer be used (closed, or a request was abandoned half-way).
    var unusableReason: String?
    private var freed = false

    init(
        session: OpaquePointer, socket: Int32, endpoint: SSHEndpoint, reactor: SSHReactor, logger: Logger,
        keepaliveInterval: Duration?, keepaliveCountMax: Int = 3, gateway: SSHGateway? = nil
    ) {
        self.gateway = gateway
        self.session = session
        self.socket = socket
        self.endpoint = endpoint
        self.reactor = reactor
        self.logger = logger
        // ServerAliveInterval 0 means "off", as in OpenSSH.
        self.keepaliveInterval = keepaliveInterval.flatMap { $0 > .zero ? $0 : nil }
        self.keepaliveCountMax = max(0, keepaliveCountMax)
        receiveState = .allocate(capacity: 1)
        receiveState.initialize(to: ReceiveState(lastReceived: monotonicNanoseconds()))
        receivedAtLastCount = receiveState.pointee.lastReceived
        // libssh2 hands the session's abstract pointer to the receive callback.
        libssh2_session_abstract(session).pointee = UnsafeMutableRawPointer(receiveState)
        _ = libssh2_session_callback_set(
            session, LIBSSH2_CALLBACK_RECV, unsafeBitCast(recordingReceive, to: UnsafeMutableRawPointer.self))
    }

    /// Counts keepalives the way OpenSSH does: after `keepaliveInterval` without a byte from the server
    /// one is sent (with want-reply, so a live server always answers) and the next is due an interval
    /// later; any byte from the server resets the count. Once `keepaliveCountMax` have gone unanswered
    /// for an interval each, the connection is lost: interval × (count max + 1) of silence in all.
    /// (A session idle between tasks is probed at once when used again.) Returns when to look again.
    func checkAlive() throws -> ContinuousClock.Instant? {
        guard keepalivesStarted, let interval = keepaliveInterval else { return nil }
        let now = ContinuousClock.now
        let received = receiveState.pointee.lastReceived
        if received != receivedAtLastCount {
            receivedAtLastCount = received
            keepalivesUnanswered = 0
            nextKeepalive = now + interval
        }
        guard let due = nextKeepalive, due <= now else { return nextKeepalive }
        if keepalivesUnanswered >= keepaliveCountMax {
            let silence = Duration.nanoseconds(monotonicNanoseconds() - received)
            let reason =
                "connection lost: no answer from the server for \(DurationFormat.seconds(silence)) "
                + "(\(keepaliveCountMax) keepalives unanswered, ServerAliveInterval \(DurationFormat.seconds(interval)))"
                + (gateway.map { " through the gateway \($0.endpoint)" } ?? "")
            unusableReason = reason
            throw SSHError(
                endpoint: endpoint, operation: .exec, kind: .sessionClosed, message: reason,
                remedy: gateway.map { "check the gateway \($0.endpoint) and the network behind it" }
                    ?? "check the host is up and the network to it works")
        }
        var secondsToNext: Int32 = 0
        _ = libssh2_keepalive_send(session, &secondsToNext)
        keepalivesUnanswered += 1
        nextKeepalive = now + interval
        return nextKeepalive
    }

    /// Forgets past silence: for a gateway that sat idle (nothing read its socket, so replies were
    /// not seen) and is now carrying traffic again.
    func restartKeepaliveCount() {
        keepalivesUnanswered = 0
        nextKeepalive = keepaliveInterval.map { .now + $0 }
    }

    /// Builds an error from the session's last libssh2 error, read right now.
    func error(
        _ operation: SSHError.Operation, _ context: String, kind: SSHError.Kind? = nil, remedy: String? = nil
    ) -> SSHError {
        let (code, message) = lastError(session)
        // Behind a gateway, a dropped socket usually means the gateway went away: say so.
        var gatewayNote = ""
        if let gateway, let reason = gateway.failureReason {
            gatewayNote = " (the gateway \(gateway.endpoint) failed: \(reason))"
        }
        // A socket that fails under a running session is the host (or the link) going away: say so.
        let lost = [LIBSSH2_ERROR_SOCKET_RECV, LIBSSH2_ERROR_SOCKET_DISCONNECT, LIBSSH2_ERROR_SOCKET_SEND].contains(
            code)
        return SSHError(
            endpoint: endpoint, operation: operation, kind: kind ?? kindForLibSSH2Code(code), code: code,
            message: "\(lost ? "connection lost: " : "")\(context): \(message)\(gatewayNote)",
            remedy: remedy ?? (lost ? "check whether the host is up (it may have rebooted or died)" : nil))
    }

    func ensureUsable(_ operation: SSHError.Operation) throws {
        if let unusableReason {
            throw SSHError(
                endpoint: endpoint, operation: operation, kind: .sessionClosed,
                message: "session is not usable: \(unusableReason)", remedy: "connect again")
        }
    }

    /// Waits until the socket is ready in the directions libssh2 is blocked on, sending keepalives
    /// while waiting. Returns false once `deadline` has passed.
    func waitForSocket(deadline: ContinuousClock.Instant?, cancellable: Bool = true) async throws -> Bool {
        while true {
            let directions = libssh2_session_block_directions(session)
            var events: Int16 = 0
            if directions & LIBSSH2_SESSION_BLOCK_INBOUND != 0 { events |= Int16(POLLIN) }
            if directions & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { events |= Int16(POLLOUT) }
            if events == 0 { events = Int16(POLLIN) }
            // (A session behind a gateway runs on a socketpair: no TCP, no delayed ACK to undo.)
            if events & Int16(POLLIN) != 0 && gateway == nil { enableQuickAck() }
            var wakeAt = deadline
            if let k = try checkAlive(), wakeAt.map({ k < $0 }) ?? true { wakeAt = k }
            let outcome = try await reactor.waitForSocket(
                socket, events: events, deadline: wakeAt, cancellable: cancellable)
            if case .ready = outcome { return true }
            if let deadline, deadline <= .now { return false }
        }
    }

    /// sshd leaves Nagle on for non-PTY sessions, so its second small packet waits for our ACK; Linux's
    /// delayed ACK would hold that for up to 40 ms. Quick-ACK mode is not sticky, so re-arm it before
    /// each wait for input.
    private func enableQuickAck() {
        var one: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_QUICKACK, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Calls an int-returning libssh2 function until it stops returning `EAGAIN`.
    /// Throws a `timeoutKind` error named `what` if `deadline` passes first.
    func call(
        _ operation: SSHError.Operation, _ what: String, deadline: ContinuousClock.Instant?,
        timeoutKind: SSHError.Kind, cancellable: Bool = true, _ body: () -> Int32
    ) async throws -> Int32 {
        while true {
            let rc = body()
            if rc != LIBSSH2_ERROR_EAGAIN { return rc }
            if try await !waitForSocket(deadline: deadline, cancellable: cancellable) {
                throw SSHError(
                    endpoint: endpoint, operation: operation, kind: timeoutKind, message: "\(what) timed out")
            }
        }
    }

    /// Calls a pointer-returning libssh2 function until it stops failing with `EAGAIN`; nil is a real failure.
    func callPointer(
        _ operation: SSHError.Operation, _ what: String, deadline: ContinuousClock.Instant?,
        timeoutKind: SSHError.Kind, _ body: () -> OpaquePointer?
    ) async throws -> OpaquePointer? {
        while true {
            if let pointer = body() { return pointer }
            if libssh2_session_last_errno(session) != LIBSSH2_ERROR_EAGAIN { return nil }
            if try await !waitForSocket(deadline: deadline) {
                throw SSHError(
                    endpoint: endpoint, operation: operation, kind: timeoutKind, message: "\(what) timed out")
            }
        }
    }

    /// Says goodbye politely (bounded to a second), then frees everything.
    func closeGracefully() async {
        guard !freed else { return }
        let deadline = ContinuousClock.now + .seconds(1)
        if let sftp {
            _ = try? await call(
                .exec, "SFTP shutdown", deadline: deadline, timeoutKind: .sessionClosed,
                cancellable: false
            ) { libssh2_sftp_shutdown(sftp) }
            self.sftp = nil
        }
        if unusableReason == nil {
            _ = try? await call(
                .exec, "disconnect", deadline: deadline, timeoutKind: .sessionClosed,
                cancellable: false
            ) {
                libssh2_session_disconnect_ex(session, SSH_DISCONNECT_BY_APPLICATION, "closed", "")
            }
        }
        free()
    }

    /// Frees the session without talking to the server: shutting the socket down first makes any send
    /// libssh2 still wants to do fail at once instead of returning `EAGAIN`.
    func free() {
        guard !freed else { return }
        freed = true
        unusableReason = unusableReason ?? "session closed"
        Glibc.shutdown(socket, Int32(SHUT_RDWR))
        if let sftp {
            retryBriefly { libssh2_sftp_shutdown(sftp) }
            self.sftp = nil
        }
        retryBriefly { libssh2_session_free(session) }
        Glibc.close(socket)
    }

    deinit {
        free()
        receiveState.pointee.readAhead.deallocate()
        receiveState.deallocate()
    }

    /// With the socket shut down, `EAGAIN` can only come back a few times; never loop forever.
    private func retryBriefly(_ body: () -> Int32) {
        var attempts = 0
        while body() == LIBSSH2_ERROR_EAGAIN && attempts < 8 { attempts += 1 }
    }

}

/// CLOCK_MONOTONIC in nanoseconds (the receive callback is C and cannot use Swift clocks cheaply).
func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// What the receive callback keeps for one session, reached through the session's abstract pointer.
struct ReceiveState {
    /// When the last byte arrived from the server (CLOCK_MONOTONIC ns): how keepalives are counted.
    var lastReceived: Int64
    /// Bytes read from the socket but not yet handed to libssh2: `readAhead[start..<end]`.
    let readAhead = UnsafeMutablePointer<UInt8>.allocate(capacity: ReceiveState.readAheadCapacity)
    var start = 0
    var end = 0

    static let readAheadCapacity = 2048
    /// Reads shorter than this are served from a read-ahead: libssh2 1.10 reads the server's banner
    /// one byte per call (`banner_receive`), which was about 40 `recv` calls a connection.
    static let smallRead = 64

    init(lastReceived: Int64) { self.lastReceived = lastReceived }
}

/// libssh2's socket read (`_libssh2_recv`: `-errno` on failure) that stamps the session's
/// `lastReceived` whenever bytes arrive, which is how unanswered keepalives are counted, and turns
/// libssh2's one-byte reads into one `recv` of up to ``ReceiveState/readAheadCapacity``.
///
/// Bytes read ahead always go first, and `-EAGAIN` is returned only when none are left, so libssh2
/// never waits for the socket while data it has not seen sits here.
private let recordingReceive:
    @convention(c) (
        Int32, UnsafeMutableRawPointer?, Int, Int32, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> Int = { socket, buffer, length, flags, abstract in
        guard let state = abstract?.pointee?.assumingMemoryBound(to: ReceiveState.self), let buffer else {
            let n = recv(socket, buffer, length, flags)
            return n < 0 ? -Int(errno) : n
        }
        if state.pointee.end > state.pointee.start {
            let n = min(length, state.pointee.end - state.pointee.start)
            buffer.copyMemory(from: state.pointee.readAhead + state.pointee.start, byteCount: n)
            state.pointee.start += n
            return n
        }
        // libssh2 passes MSG_NOSIGNAL; any other flag (MSG_PEEK) reads as asked.
        if length < ReceiveState.smallRead && flags & ~Int32(MSG_NOSIGNAL) == 0 {
            let n = recv(socket, state.pointee.readAhead, ReceiveState.readAheadCapacity, flags)
            if n < 0 { return -Int(errno) }
            if n == 0 { return 0 }
            state.pointee.lastReceived = monotonicNanoseconds()
            let served = min(length, n)
            buffer.copyMemory(from: state.pointee.readAhead, byteCount: served)
            state.pointee.start = served
            state.pointee.end = n
            return served
        }
        let n = recv(socket, buffer, length, flags)
        if n < 0 { return -Int(errno) }
        if n > 0 { state.pointee.lastReceived = monotonicNanoseconds() }
        return n
    }

/// Durations in operator text: "6 s", "1.5 s".
enum DurationFormat {
    static func seconds(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        return ms % 1000 == 0 ? "\(ms / 1000) s" : String(format: "%.1f s", Double(ms) / 1000)
    }
}
