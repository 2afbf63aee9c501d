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
    let keepaliveInterval: Duration?
    /// The gateway whose channel carries this session's socket, if any.
    let gateway: SSHGateway?
    var nextKeepalive: ContinuousClock.Instant?
    var sftp: OpaquePointer?
    /// Set when the session can no longer be used (closed, or a request was abandoned half-way).
    var unusableReason: String?
    private var freed = false

    init(session: OpaquePointer, socket: Int32, endpoint: SSHEndpoint, reactor: SSHReactor, logger: Logger,
         keepaliveInterval: Duration?, gateway: SSHGateway? = nil) {
        self.gateway = gateway
        self.session = session
        self.socket = socket
        self.endpoint = endpoint
        self.reactor = reactor
        self.logger = logger
        self.keepaliveInterval = keepaliveInterval
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
        return SSHError(
            endpoint: endpoint, operation: operation, kind: kind ?? kindForLibSSH2Code(code), code: code,
            message: "\(context): \(message)\(gatewayNote)", remedy: remedy)
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
            if events & Int16(POLLIN) != 0 { enableQuickAck() }
            var wakeAt = deadline
            if let k = nextKeepalive, wakeAt.map({ k < $0 }) ?? true { wakeAt = k }
            let outcome = try await reactor.waitForSocket(
                socket, events: events, deadline: wakeAt, cancellable: cancellable)
            if case .ready = outcome { return true }
            let now = ContinuousClock.now
            if let k = nextKeepalive, k <= now, let interval = keepaliveInterval {
                var secondsToNext: Int32 = 0
                _ = libssh2_keepalive_send(session, &secondsToNext)
                nextKeepalive = now + (secondsToNext > 0 ? .seconds(Int(secondsToNext)) : interval)
            }
            if let deadline, deadline <= now { return false }
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
            _ = try? await call(.exec, "SFTP shutdown", deadline: deadline, timeoutKind: .sessionClosed,
                                cancellable: false) { libssh2_sftp_shutdown(sftp) }
            self.sftp = nil
        }
        if unusableReason == nil {
            _ = try? await call(.exec, "disconnect", deadline: deadline, timeoutKind: .sessionClosed,
                                cancellable: false) {
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

    /// With the socket shut down, `EAGAIN` can only come back a few times; never loop forever.
    private func retryBriefly(_ body: () -> Int32) {
        var attempts = 0
        while body() == LIBSSH2_ERROR_EAGAIN && attempts < 8 { attempts += 1 }
    }

    deinit { free() }
}
