import CLibSSH2
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A configured private key file and what we could learn of its public half without a passphrase.
struct IdentityFile {
    let path: String
    /// The SSH wire-format public key, from `path.pub` or the unencrypted header of an OpenSSH key.
    let publicBlob: [UInt8]?
    /// e.g. "ssh-ed25519", "ssh-rsa"; nil if unknown.
    let keyType: String?
    /// Set for an unencrypted ed25519 key, which is then signed in-process.
    let inMemoryKey: InMemoryEd25519Key?

    init(path: String) {
        self.path = path
        var blob: [UInt8]?
        var type: String?
        var inMemory: InMemoryEd25519Key?
        if let pub = try? String(contentsOfFile: path + ".pub", encoding: .utf8) {
            let fields = pub.split(separator: " ")
            if fields.count >= 2, let data = Data(base64Encoded: String(fields[1])) { blob = Array(data) }
        }
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            if text.contains("BEGIN RSA PRIVATE KEY") { type = "ssh-rsa" }
            if let file = OpenSSHKeyFile(text: text) {
                inMemory = InMemoryEd25519Key(file)
                if blob == nil { blob = file.publicBlob }
            }
        }
        // A .pub file that does not match the private key: let libssh2 report it as it would.
        if let key = inMemory, let blob, blob != key.publicBlob { inMemory = nil }
        self.inMemoryKey = inMemory
        self.publicBlob = blob
        self.keyType = blob.flatMap(keyTypeOfBlob) ?? type
    }
}

/// Identity files read once per process, not once per host: reading, base64-decoding and checking
/// a key on every connection was measurable client CPU at hundreds of hosts. An entry is used while
/// the key file's and its `.pub`'s size, mtime and inode are unchanged.
enum IdentityFileCache {
    private struct Stamp: Equatable {
        var key: [Int]
        var pub: [Int]
    }

    /// Immutable once made; `@unchecked` because swift-crypto's key type is not marked Sendable.
    private final class Entry: @unchecked Sendable {
        let stamp: Stamp
        let identity: IdentityFile
        init(stamp: Stamp, identity: IdentityFile) {
            self.stamp = stamp
            self.identity = identity
        }
    }

    private static let entries = Mutex<[String: Entry]>([:])

    static func identity(at path: String) -> IdentityFile {
        let stamp = Stamp(key: fileStamp(path), pub: fileStamp(path + ".pub"))
        if let hit = entries.withLock({ $0[path] }), hit.stamp == stamp { return hit.identity }
        let entry = Entry(stamp: stamp, identity: IdentityFile(path: path))
        entries.withLock { $0[path] = entry }
        return entry.identity
    }

    /// Size, mtime (ns) and inode, or empty when the file cannot be stat'ed.
    private static func fileStamp(_ path: String) -> [Int] {
        var info = stat()
        guard stat(path, &info) == 0 else { return [] }
        return [Int(info.st_size), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec), Int(info.st_ino)]
    }
}

/// The fields of an `openssh-key-v1` file (`BEGIN OPENSSH PRIVATE KEY`) readable without a
/// passphrase: magic, cipher, kdf, kdf options, key count, the first public key, then the private
/// section (encrypted unless the cipher is "none").
struct OpenSSHKeyFile {
    let cipher: [UInt8]
    let publicBlob: [UInt8]
    let privateSection: [UInt8]

    init?(text: String) {
        guard text.contains("BEGIN OPENSSH PRIVATE KEY") else { return nil }
        let body = text.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        guard let data = Data(base64Encoded: body) else { return nil }
        var reader = WireReader(Array(data))
        guard reader.bytes(15) == Array("openssh-key-v1".utf8) + [0],
            let cipher = reader.string(),
            reader.string() != nil, // kdf
            reader.string() != nil, // kdf options
            let count = reader.uint32(), count >= 1,
            let publicBlob = reader.string(),
            let privateSection = reader.string()
        else { return nil }
        self.cipher = cipher
        self.publicBlob = publicBlob
        self.privateSection = privateSection
    }
}

/// Reads SSH wire-format fields (RFC 4251 §5).
struct WireReader {
    private let buffer: [UInt8]
    private var offset = 0

    init(_ buffer: [UInt8]) { self.buffer = buffer }

    mutating func bytes(_ n: Int) -> [UInt8]? {
        guard n >= 0, offset + n <= buffer.count else { return nil }
        defer { offset += n }
        return Array(buffer[offset..<offset + n])
    }

    mutating func uint32() -> UInt32? {
        bytes(4).map { $0.reduce(0) { $0 << 8 | UInt32($1) } }
    }

    mutating func string() -> [UInt8]? {
        uint32().flatMap { bytes(Int($0)) }
    }
}

/// The algorithm name at the start of a public key blob.
func keyTypeOfBlob(_ blob: [UInt8]) -> String? {
    var reader = WireReader(blob)
    return reader.string().map { String(decoding: $0, as: UTF8.self) }
}

extension SessionConnection {
    /// Agent keys first (those matching a configured identity file first of all, to stay under the
    /// server's MaxAuthTries), then identity files the agent did not already cover.
    ///
    /// It goes straight to public keys: asking for the method list first ("none" auth) costs a round
    /// trip plus sshd's anti-enumeration delay on every connection, so the list is only fetched to
    /// explain a failure.
    func authenticate(options: SSHClientOptions, deadline: ContinuousClock.Instant) async throws {
        let user = endpoint.user
        let userLength = UInt32(user.utf8.count)
        var tried: [String] = []
        var rejectedRSA = 0
        var rejectedOther = 0
        var offered = 0
        var unreadable: [String] = []

        let identities = options.identityFiles.map { IdentityFileCache.identity(at: expandTilde($0)) }
        var coveredByAgent = Set<String>()

        /// Runs one attempt; true means authenticated. Auth rejections are recorded, other failures thrown.
        func attempt(_ label: String, keyType: String?, _ body: () -> Int32) async throws -> Bool {
            offered += 1
            let rc = try await call(.auth, "authentication", deadline: deadline, timeoutKind: .connectTimeout, body)
            if rc == 0 { return true }
            let (_, message) = lastError(session)
            switch rc {
            case LIBSSH2_ERROR_AUTHENTICATION_FAILED, LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED:
                tried.append(label)
                if keyType == "ssh-rsa" { rejectedRSA += 1 } else { rejectedOther += 1 }
            case LIBSSH2_ERROR_FILE, LIBSSH2_ERROR_KEYFILE_AUTH_FAILED, LIBSSH2_ERROR_METHOD_NOT_SUPPORTED:
                tried.append(
                    "\(label) (could not use it: \(message); a passphrase-protected key must be loaded into ssh-agent)")
            case LIBSSH2_ERROR_AGENT_PROTOCOL:
                tried.append("\(label) (agent failed to sign: \(message))")
            default:
                throw SSHError(
                    endpoint: endpoint, operation: .auth, kind: kindForLibSSH2Code(rc), code: rc,
                    message: "authentication with \(label) failed: \(message)")
            }
            logger.debug("key rejected", metadata: ["host": "\(endpoint)", "key": "\(label)", "reason": "\(message)"])
            return false
        }

        // getenv, not ProcessInfo's environment, which copies the whole environment for every host.
        let agentPath = options.agentSocketPath ?? getenv("SSH_AUTH_SOCK").map { String(cString: $0) }
        if options.useAgent, let agentPath, !agentPath.isEmpty, let agent = libssh2_agent_init(session) {
            defer { libssh2_agent_free(agent) }
            libssh2_agent_set_identity_path(agent, agentPath)
            // Agent I/O is a blocking local Unix socket in libssh2 1.10; it answers in microseconds.
            if libssh2_agent_connect(agent) == 0 {
                defer { libssh2_agent_disconnect(agent) }
                if libssh2_agent_list_identities(agent) == 0 {
                    var agentKeys: [UnsafeMutablePointer<libssh2_agent_publickey>] = []
                    var previous: UnsafeMutablePointer<libssh2_agent_publickey>?
                    var current: UnsafeMutablePointer<libssh2_agent_publickey>?
                    while libssh2_agent_get_identity(agent, &current, previous) == 0, let key = current {
                        agentKeys.append(key)
                        previous = key
                    }
                    let configuredBlobs = identities.compactMap(\.publicBlob)
                    func blob(_ key: UnsafeMutablePointer<libssh2_agent_publickey>) -> [UInt8] {
                        Array(UnsafeBufferPointer(start: key.pointee.blob, count: Int(key.pointee.blob_len)))
                    }
                    let ordered =
                        agentKeys.filter { configuredBlobs.contains(blob($0)) }
                        + agentKeys.filter { !configuredBlobs.contains(blob($0)) }
                    for key in ordered {
                        let keyBlob = blob(key)
                        let type = keyTypeOfBlob(keyBlob)
                        let comment = key.pointee.comment.map { String(cString: $0) } ?? ""
                        let label =
                            "agent key \(comment.isEmpty ? "(no comment)" : comment) (\(type ?? "unknown type"))"
                        if let match = identities.first(where: { $0.publicBlob == keyBlob }) {
                            coveredByAgent.insert(match.path)
                        }
                        if try await attempt(label, keyType: type, { libssh2_agent_userauth(agent, user, key) }) {
                            logger.debug("authenticated", metadata: ["host": "\(endpoint)", "key": "\(label)"])
                            return
                        }
                    }
                } else {
                    logger.debug("ssh-agent listed no identities", metadata: ["socket": "\(agentPath)"])
                }
            } else {
                logger.debug("cannot connect to ssh-agent", metadata: ["socket": "\(agentPath)"])
            }
        }

        for identity in identities where !coveredByAgent.contains(identity.path) {
            let label = "key file \(identity.path) (\(identity.keyType ?? "unknown type"))"
            guard access(identity.path, R_OK) == 0 else {
                tried.append("\(label) (not readable)")
                unreadable.append(identity.path)
                continue
            }
            let ok = try await attempt(label, keyType: identity.keyType) {
                if let key = identity.inMemoryKey { return key.authenticate(session: session, user: user) }
                return libssh2_userauth_publickey_fromfile_ex(session, user, userLength, nil, identity.path, nil)
            }
            if ok {
                logger.debug("authenticated", metadata: ["host": "\(endpoint)", "key": "\(label)"])
                return
            }
        }

        switch try await authenticationMethods(user: user, deadline: deadline) {
        case .authenticated:
            return
        case .offered(let methods) where !methods.split(separator: ",").contains("publickey"):
            throw SSHError(
                endpoint: endpoint, operation: .auth, kind: .authenticationFailed,
                message:
                    "server for \(user)@\(endpoint.host) does not accept public-key authentication (offers: \(methods))",
                remedy: "enable PubkeyAuthentication on the server")
        case .offered:
            break
        }

        let who = "\(user)@\(endpoint.hostAndPort)"
        if offered == 0, !unreadable.isEmpty {
            // Nothing reached the server: authorized_keys is not the problem, the local file is.
            let missing = unreadable.map {
                FileManager.default.fileExists(atPath: $0) ? "\($0) (not readable)" : "\($0) (does not exist)"
            }
            throw SSHError(
                endpoint: endpoint, operation: .auth, kind: .authenticationFailed,
                message: "no key to offer for \(who): identity file \(missing.joined(separator: ", "))",
                remedy: "fix identity_files in the inventory (or -i), or load the key into ssh-agent")
        }
        let triedText =
            tried.isEmpty
            ? "no keys were available (agent \(options.useAgent ? (agentPath ?? "not set") : "disabled"), \(identities.count) identity files)"
            : "tried " + tried.joined(separator: ", ")
        if rejectedRSA > 0 && rejectedOther == 0 {
            throw SSHError(
                endpoint: endpoint, operation: .auth, kind: .rsaKeyRejected, code: LIBSSH2_ERROR_AUTHENTICATION_FAILED,
                message:
                    "server rejected the RSA key for \(who): libssh2 1.10 can only sign with ssh-rsa (SHA-1), which OpenSSH 8.8 and later refuse; \(triedText)",
                remedy:
                    "use an ed25519 key (ssh-keygen -t ed25519) and add its public key to the host's authorized_keys")
        }
        let rsaNote =
            rejectedRSA > 0 ? "; note RSA keys cannot work with libssh2 1.10 against OpenSSH ≥ 8.8, use ed25519" : ""
        throw SSHError(
            endpoint: endpoint, operation: .auth, kind: .authenticationFailed,
            message: "authentication failed for \(who): \(triedText)\(rsaNote)",
            remedy:
                "check that one of these public keys is in \(user)'s authorized_keys on the host, or configure the right identity file"
        )
    }

    private enum AuthenticationMethods {
        case authenticated
        case offered(String)
    }

    /// The server's list of authentication methods ("none" auth, which may itself succeed).
    private func authenticationMethods(user: String, deadline: ContinuousClock.Instant) async throws
        -> AuthenticationMethods
    {
        while true {
            if let list = libssh2_userauth_list(session, user, UInt32(user.utf8.count)) {
                return .offered(String(cString: list))
            }
            if libssh2_userauth_authenticated(session) != 0 { return .authenticated }
            guard libssh2_session_last_errno(session) == LIBSSH2_ERROR_EAGAIN else {
                throw error(.auth, "asking for authentication methods failed")
            }
            if try await !waitForSocket(deadline: deadline) {
                throw SSHError(
                    endpoint: endpoint, operation: .auth, kind: .connectTimeout,
                    message: "authentication did not finish within the connect timeout")
            }
        }
    }
}
