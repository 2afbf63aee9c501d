import CLibSSH2

/// A failure talking to one host, with what was being done, why it failed and what to do about it.
///
/// `description` is one line for humans, e.g.
/// `root@10.0.0.5:22: auth failed: authentication failed for root@10.0.0.5 (tried agent key ...) — check ...`.
public struct SSHError: Error, CustomStringConvertible, Sendable {
    /// The phase of the session that failed.
    public enum Operation: String, Sendable, Hashable {
        case connect, handshake, hostKey, auth, exec, upload, download
    }

    /// What went wrong, precise enough to decide whether to retry or tell the user.
    public enum Kind: Sendable, Hashable {
        /// The hostname did not resolve.
        case nameResolution
        /// TCP connect, SSH handshake and authentication did not finish within the connect timeout.
        case connectTimeout
        /// Nothing listens on that port (TCP RST).
        case connectionRefused
        /// Another socket-level failure (unreachable network, reset, …).
        case connectionFailed
        /// The SSH handshake or key exchange failed (no shared algorithm, protocol error).
        case handshakeFailed
        /// No known_hosts file lists a key for this host (of the negotiated type).
        case unknownHostKey(fingerprint: String, keyType: String)
        /// known_hosts lists a different key of this type for this host.
        case hostKeyChanged(fingerprint: String, keyType: String)
        /// known_hosts marks the presented key `@revoked` for this host.
        case hostKeyRevoked(fingerprint: String, keyType: String)
        /// No offered key was accepted.
        case authenticationFailed
        /// Only RSA keys were offered and the server rejected them (libssh2 1.10 signs ssh-rsa/SHA-1 only).
        case rsaKeyRejected
        /// A command ran past its timeout (for callers that turn a timed-out ``CommandResult`` into an error).
        case commandTimedOut
        /// The server refused to open a channel or start the command.
        case channelFailure
        /// An SFTP request failed with this `LIBSSH2_FX_*` status.
        case sftp(status: UInt)
        /// A local file could not be read or written.
        case localFile(errno: Int32)
        /// A download passed the caller's size limit (`size` is what the server reported, or the bytes read so far).
        case fileTooLarge(size: Int, limit: Int)
        /// The connection dropped or the session was closed.
        case sessionClosed
        /// Any other libssh2 failure.
        case protocolError
    }

    public let endpoint: SSHEndpoint
    public let operation: Operation
    public let kind: Kind
    /// The libssh2 error code (`LIBSSH2_ERROR_*`), if a libssh2 call failed.
    public let code: Int32?
    /// What happened, including libssh2's message captured right after the failing call.
    public let message: String
    /// What the user can do about it.
    public let remedy: String?

    public init(
        endpoint: SSHEndpoint, operation: Operation, kind: Kind, code: Int32? = nil, message: String,
        remedy: String? = nil
    ) {
        self.endpoint = endpoint
        self.operation = operation
        self.kind = kind
        self.code = code
        self.message = message
        self.remedy = remedy
    }

    public var description: String {
        var line = "\(endpoint): \(operation.rawValue) failed: \(message)"
        if let code { line += " (libssh2 error \(code))" }
        if let remedy { line += " — \(remedy)" }
        return line
    }
}

extension SSHError.Kind {
    /// Connection-level failures where trying again later may help (not host-key or auth problems).
    public var isConnectivity: Bool {
        switch self {
        case .nameResolution, .connectTimeout, .connectionRefused, .connectionFailed, .sessionClosed: true
        default: false
        }
    }
}

/// Reads the session's last error right after a failing call, before the next call overwrites it.
func lastError(_ session: OpaquePointer) -> (code: Int32, message: String) {
    var messagePointer: UnsafeMutablePointer<CChar>?
    var length: Int32 = 0
    let code = libssh2_session_last_error(session, &messagePointer, &length, 0)
    let message = messagePointer.map { String(cString: $0) } ?? "unknown error"
    return (code, message)
}

/// Maps socket-level libssh2 codes to a kind; everything else is a protocol error.
func kindForLibSSH2Code(_ code: Int32) -> SSHError.Kind {
    switch code {
    case LIBSSH2_ERROR_SOCKET_DISCONNECT, LIBSSH2_ERROR_SOCKET_SEND, LIBSSH2_ERROR_SOCKET_RECV,
        LIBSSH2_ERROR_CHANNEL_CLOSED, LIBSSH2_ERROR_CHANNEL_EOF_SENT:
        .sessionClosed
    case LIBSSH2_ERROR_CHANNEL_FAILURE, LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED:
        .channelFailure
    default:
        .protocolError
    }
}
