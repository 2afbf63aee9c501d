import CLibSSH2
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// An authenticated SSH connection to one host.
///
/// Safe to use from any task: operations on one session are serialised (libssh2 handles must never be
/// used by two threads at once), while different sessions run concurrently on one ``SSHReactor``.
public final class SSHSession: Sendable {
    public let endpoint: SSHEndpoint
    /// The server's host key as OpenSSH prints it, e.g. `SHA256:abc…`.
    public let hostKeyFingerprint: String
    /// The host-key algorithm negotiated, e.g. `ssh-ed25519`.
    public let hostKeyAlgorithm: String
    let connection: SessionConnection
    let lock = AsyncSerialLock()
    let connectTimeout: Duration

    private init(connection: SessionConnection, fingerprint: String, algorithm: String, connectTimeout: Duration) {
        self.endpoint = connection.endpoint
        self.connection = connection
        self.hostKeyFingerprint = fingerprint
        self.hostKeyAlgorithm = algorithm
        self.connectTimeout = connectTimeout
    }

    /// Connects, verifies the host key strictly against known_hosts and authenticates, all within
    /// `options.connectTimeout`. Cancelling the task abandons the attempt and closes the socket.
    ///
    /// With a `gateway`, the connection is a `direct-tcpip` channel opened on the gateway's session
    /// (`endpoint.host` is resolved and connected to by the gateway); the same timeout covers opening
    /// the channel, and the host key is checked for `endpoint` exactly as for a direct connection.
    public static func connect(
        to endpoint: SSHEndpoint, options: SSHClientOptions, reactor: SSHReactor, logger: Logger,
        via gateway: SSHGateway? = nil
    ) async throws -> SSHSession {
        let deadline = ContinuousClock.now + options.connectTimeout
        let socket = try await TCPConnector.open(to: endpoint, via: gateway, deadline: deadline, reactor: reactor)
        let (connection, fingerprint, algorithm) = try await SessionConnection.establish(
            socket: socket, endpoint: endpoint, options: options, reactor: reactor, logger: logger,
            deadline: deadline, gateway: gateway)
        return SSHSession(
            connection: connection, fingerprint: fingerprint, algorithm: algorithm,
            connectTimeout: options.connectTimeout)
    }

    /// The gateway this session runs through, if any.
    public var gateway: SSHGateway? { connection.gateway }

    /// The algorithms negotiated with the server (waits for any running operation first).
    func negotiatedAlgorithms() async -> NegotiatedAlgorithms {
        await lock.lockUncancellable()
        defer { lock.unlock() }
        return connection.negotiatedAlgorithms
    }

    /// Closes the connection (waiting for any running operation to finish first). Idempotent.
    public func close() async {
        await lock.lockUncancellable()
        await connection.closeGracefully()
        lock.unlock()
    }
}

extension SessionConnection {
    /// Starts a libssh2 session on a connected `socket` (owned from here on: closed on failure),
    /// checks the host key and authenticates before `deadline`.
    static func establish(
        socket: Int32, endpoint: SSHEndpoint, options: SSHClientOptions, reactor: SSHReactor, logger: Logger,
        deadline: ContinuousClock.Instant, gateway: SSHGateway?
    ) async throws -> (SessionConnection, fingerprint: String, algorithm: String) {
        let started = ContinuousClock.now
        guard let session = libssh2_session_init_ex(nil, nil, nil, nil) else {
            Glibc.close(socket)
            throw SSHError(
                endpoint: endpoint, operation: .connect, kind: .protocolError,
                message: "libssh2_session_init failed (out of memory?)")
        }
        libssh2_session_set_blocking(session, 0)
        let connection = SessionConnection(
            session: session, socket: socket, endpoint: endpoint, reactor: reactor, logger: logger,
            keepaliveInterval: options.keepaliveInterval, keepaliveCountMax: options.keepaliveCountMax, gateway: gateway
        )
        do {
            let (fingerprint, algorithm) = try await connection.handshakeAndVerifyHostKey(
                knownHostsFiles: options.knownHostsFiles, deadline: deadline)
            let handshakeDone = ContinuousClock.now
            try await connection.authenticate(options: options, deadline: deadline)
            let authDone = ContinuousClock.now
            if options.keepaliveInterval != nil {
                // want_reply, so a live server always answers; libssh2's own 1 s minimum spacing
                // never holds back one of ours (SessionConnection schedules them).
                libssh2_keepalive_config(session, 1, 1)
                connection.keepalivesStarted = true
            }
            logger.debug(
                "connected",
                metadata: [
                    "host": "\(endpoint)", "hostKey": "\(algorithm) \(fingerprint)",
                    "via": "\(gateway.map { "\($0.endpoint)" } ?? "direct")",
                    "algorithms": "\(connection.negotiatedAlgorithms)",
                    "handshake_ms": "\(milliseconds(handshakeDone - started))",
                    "auth_ms": "\(milliseconds(authDone - handshakeDone))",
                ])
            return (connection, fingerprint, algorithm)
        } catch {
            connection.free()
            throw error
        }
    }

    /// Runs the SSH handshake preferring host-key algorithms known_hosts already has for this host, then
    /// checks the key presented with its type bits (libssh2 1.10 would otherwise negotiate ECDSA and,
    /// checked without type bits, report a known ed25519-only host as "changed").
    func handshakeAndVerifyHostKey(
        knownHostsFiles: [String], deadline: ContinuousClock.Instant
    ) async throws -> (fingerprint: String, algorithm: String) {
        guard
            let knownHosts = KnownHosts(
                files: knownHostsFiles, host: endpoint.host, port: endpoint.port, session: session, logger: logger)
        else {
            throw SSHError(
                endpoint: endpoint, operation: .hostKey, kind: .protocolError,
                message: "libssh2_knownhost_init failed")
        }
        let known = knownHosts.knownTypes(host: endpoint.host, port: endpoint.port)
        let preference = known + HostKeyType.all.filter { !known.contains($0) }
        let preferenceList = preference.map(\.algorithm).joined(separator: ",")
        if libssh2_session_method_pref(session, LIBSSH2_METHOD_HOSTKEY, preferenceList) != 0 {
            logger.warning("could not set host key preference \(preferenceList): \(lastError(session).message)")
        }

        let rc = try await call(
            .handshake, "SSH handshake (no SSH banner or key exchange)", deadline: deadline,
            timeoutKind: .connectTimeout
        ) { libssh2_session_handshake(session, socket) }
        if rc != 0 {
            let kind: SSHError.Kind =
                rc == LIBSSH2_ERROR_SOCKET_DISCONNECT || rc == LIBSSH2_ERROR_SOCKET_RECV
                ? .sessionClosed : .handshakeFailed
            throw error(
                .handshake, "SSH handshake failed", kind: kind,
                remedy: rc == LIBSSH2_ERROR_KEX_FAILURE
                    ? "the server shares no key-exchange or host-key algorithm with libssh2 1.10 (an RSA-only host key is not enough; give the server an ed25519 host key)"
                    : nil)
        }

        var keyLength = 0
        var rawType: Int32 = 0
        guard let keyPointer = libssh2_session_hostkey(session, &keyLength, &rawType),
            let type = HostKeyType(hostKeyType: rawType)
        else {
            throw error(.hostKey, "server presented an unsupported host key type \(rawType)", kind: .protocolError)
        }
        let hash =
            libssh2_hostkey_hash(session, LIBSSH2_HOSTKEY_HASH_SHA256).map {
                $0.withMemoryRebound(to: UInt8.self, capacity: 32) { Array(UnsafeBufferPointer(start: $0, count: 32)) }
            } ?? []
        let fingerprint = openSSHFingerprint(sha256: hash)
        let result = knownHosts.verify(
            host: endpoint.host, port: endpoint.port,
            key: UnsafeRawBufferPointer(start: keyPointer, count: keyLength), type: type)
        let hostName = endpoint.port == 22 ? endpoint.host : "[\(endpoint.host)]:\(endpoint.port)"
        let files = knownHostsFiles.joined(separator: ", ")
        if knownHosts.isRevoked(key: UnsafeRawBufferPointer(start: keyPointer, count: keyLength)) {
            throw SSHError(
                endpoint: endpoint, operation: .hostKey,
                kind: .hostKeyRevoked(fingerprint: fingerprint, keyType: type.algorithm),
                message:
                    "REVOKED HOST KEY for \(hostName): the server presented \(type.algorithm) key \(fingerprint), which \(files) marks @revoked",
                remedy: "do not connect; the host must be given a new key, then update known_hosts")
        }
        switch result {
        case LIBSSH2_KNOWNHOST_CHECK_MATCH:
            return (fingerprint, type.algorithm)
        case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
            throw SSHError(
                endpoint: endpoint, operation: .hostKey,
                kind: .hostKeyChanged(fingerprint: fingerprint, keyType: type.algorithm),
                message:
                    "HOST KEY CHANGED for \(hostName): the server presented \(type.algorithm) key \(fingerprint), which does not match \(files) — someone may be intercepting the connection, or the host was rebuilt",
                remedy:
                    "if the change is expected, verify the new fingerprint out of band, then run ssh-keygen -R '\(hostName)' and add the new key"
            )
        case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
            let portFlag = endpoint.port == 22 ? "" : "-p \(endpoint.port) "
            let otherTypes =
                known.isEmpty
                ? ""
                : " (known_hosts has only \(known.map(\.algorithm).joined(separator: ", ")) keys for it, which the server did not offer)"
            throw SSHError(
                endpoint: endpoint, operation: .hostKey,
                kind: .unknownHostKey(fingerprint: fingerprint, keyType: type.algorithm),
                message:
                    "unknown host \(hostName): its \(type.algorithm) key \(fingerprint) is not in \(files)\(otherTypes)",
                remedy:
                    "verify the fingerprint out of band, then run ssh-keyscan \(portFlag)-t \(type.algorithm) \(endpoint.host) >> \(shellWord(knownHostsFiles.first ?? "~/.ssh/known_hosts"))"
            )
        default:
            throw error(.hostKey, "checking the host key against known_hosts failed", kind: .protocolError)
        }
    }
}

/// What a session negotiated, client to server (libssh2 1.10 picks the same both ways here).
///
/// No `libssh2_session_method_pref` is set for these: 1.10's own order already puts the cheapest
/// first (curve25519-sha256, aes128-ctr, hmac-sha2-256; it has no chacha20, AES-GCM or -etm MACs),
/// and on 200 loopback hosts preferring ecdh-sha2-nistp256 instead measured the same client CPU.
struct NegotiatedAlgorithms: Equatable, Sendable, CustomStringConvertible {
    let keyExchange: String
    let hostKey: String
    let cipher: String
    let mac: String

    var description: String { "\(keyExchange) \(hostKey) \(cipher) \(mac)" }
}

extension SessionConnection {
    var negotiatedAlgorithms: NegotiatedAlgorithms {
        func method(_ type: Int32) -> String {
            libssh2_session_methods(session, type).map { String(cString: $0) } ?? ""
        }
        return NegotiatedAlgorithms(
            keyExchange: method(LIBSSH2_METHOD_KEX), hostKey: method(LIBSSH2_METHOD_HOSTKEY),
            cipher: method(LIBSSH2_METHOD_CRYPT_CS), mac: method(LIBSSH2_METHOD_MAC_CS))
    }
}

func milliseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
}

/// `path` as a shell word for a remedy line: as is when plain (so `~/` still expands), else quoted.
func shellWord(_ path: String) -> String {
    let plain = path.unicodeScalars.allSatisfy {
        $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "/._~+-@:".unicodeScalars.contains($0))
    }
    return plain && !path.isEmpty ? path : shellQuote(path)
}
