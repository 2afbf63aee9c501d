import CLibSSH2
import Foundation
import Logging
import Synchronization

/// A host-key algorithm libssh2 1.10 can negotiate, with the matching known_hosts type bits.
struct HostKeyType: Sendable, Hashable {
    /// The SSH algorithm name, as in known_hosts and `HostKeyAlgorithms`.
    let algorithm: String
    /// `LIBSSH2_KNOWNHOST_KEY_*`.
    let knownHostBits: Int32

    /// In the order we prefer them (OpenSSH's default puts ed25519 first too).
    static let all: [HostKeyType] = [
        HostKeyType(algorithm: "ssh-ed25519", knownHostBits: LIBSSH2_KNOWNHOST_KEY_ED25519),
        HostKeyType(algorithm: "ecdsa-sha2-nistp256", knownHostBits: LIBSSH2_KNOWNHOST_KEY_ECDSA_256),
        HostKeyType(algorithm: "ecdsa-sha2-nistp384", knownHostBits: LIBSSH2_KNOWNHOST_KEY_ECDSA_384),
        HostKeyType(algorithm: "ecdsa-sha2-nistp521", knownHostBits: LIBSSH2_KNOWNHOST_KEY_ECDSA_521),
        HostKeyType(algorithm: "ssh-rsa", knownHostBits: LIBSSH2_KNOWNHOST_KEY_SSHRSA),
    ]

    /// Maps `libssh2_session_hostkey`'s `LIBSSH2_HOSTKEY_TYPE_*`.
    init?(hostKeyType: Int32) {
        switch hostKeyType {
        case LIBSSH2_HOSTKEY_TYPE_ED25519: self = Self.all[0]
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: self = Self.all[1]
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: self = Self.all[2]
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: self = Self.all[3]
        case LIBSSH2_HOSTKEY_TYPE_RSA: self = Self.all[4]
        default: return nil
        }
    }

    init(algorithm: String, knownHostBits: Int32) {
        self.algorithm = algorithm
        self.knownHostBits = knownHostBits
    }
}

/// Strict host-key checking against OpenSSH known_hosts files, which are only ever read.
final class KnownHosts {
    private let collection: OpaquePointer
    private let session: OpaquePointer
    /// How many entries were loaded, for log lines.
    private(set) var entryCount = 0
    /// Key blobs marked `@revoked` for this host.
    private(set) var revokedKeys: [[UInt8]] = []

    /// Looks `host` up in every file, each parsed once per process (see ``KnownHostsCache``); lines
    /// libssh2 cannot parse are skipped with a warning naming file:line, where
    /// `libssh2_knownhost_readfile` would fail at the first. Only the entries that name the host, by
    /// OpenSSH's rules (negation, wildcards, hashing), reach libssh2: decoding every key of a
    /// fleet-sized file on every connect was most of the client's CPU.
    init?(files: [String], host: String, port: Int, session: OpaquePointer, logger: Logger) {
        let lookupName = KnownHostsEntry.lookupName(host: host, port: port)
        let plainName = host.lowercased()
        let names = lookupName == plainName ? [plainName] : [lookupName, plainName]
        guard let collection = libssh2_knownhost_init(session) else { return nil }
        self.collection = collection
        self.session = session
        // Entries that name the host, found by OpenSSH's rules (negation, wildcards, hashing).
        var candidates: [(entry: KnownHostsEntry, bracketed: Bool, at: String)] = []
        for file in files {
            let path = expandTilde(file)
            let index: KnownHostsIndex
            switch KnownHostsCache.index(path: path) {
            case .parsed(let parsed): index = parsed
            case .missing:
                logger.debug("known_hosts file not found, skipped", metadata: ["file": "\(path)"])
                continue
            case .unreadable(let reason):
                Self.warnOnce(logger, "cannot read known_hosts file \(path) (\(reason)), skipped")
                continue
            }
            for warning in index.warnings { Self.warnOnce(logger, warning) }
            for position in index.candidates(for: names) {
                let line = index.lines[position]
                if let blob = line.revokedBlob {
                    if line.entry.matches(lookupName) || line.entry.matches(plainName) { revokedKeys.append(blob) }
                } else if lookupName != plainName, line.entry.matches(lookupName) {
                    candidates.append((line.entry, true, "\(path):\(line.lineNumber)"))
                } else if line.entry.matches(plainName) {
                    candidates.append((line.entry, lookupName == plainName, "\(path):\(line.lineNumber)"))
                }
            }
        }
        // As OpenSSH: for another port, `[host]:port` entries of a key type decide; plain `host`
        // entries of that type count only when there are none. libssh2 would try both and take any
        // match, so it sees only the chosen entries, all under the one name it compares first.
        let bracketedTypes = Set(candidates.filter(\.bracketed).map(\.entry.keyType))
        for candidate in candidates where candidate.bracketed || !bracketedTypes.contains(candidate.entry.keyType) {
            let canonical = Array("\(lookupName) \(candidate.entry.keyType) \(candidate.entry.base64Key)".utf8)
            // NUL-terminated as well as length-delimited, in case libssh2 scans past the length.
            let rc = (canonical + [0]).withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) {
                    libssh2_knownhost_readline(collection, $0.baseAddress, $0.count - 1, LIBSSH2_KNOWNHOST_FILE_OPENSSH)
                }
            }
            if rc == 0 {
                entryCount += 1
            } else {
                let (_, message) = lastError(session)
                Self.warnOnce(logger, "\(candidate.at): skipping malformed known_hosts line: \(message)")
            }
        }
    }

    deinit { libssh2_knownhost_free(collection) }

    /// Warnings already given by this process. They are about a file, not a host: a run that connects
    /// to 50 hosts says each once, not 50 times.
    private static let warned = Mutex<Set<String>>([])

    static func warnOnce(_ logger: Logger, _ message: String) {
        guard warned.withLock({ $0.insert(message).inserted }) else { return }
        logger.warning("\(message)")
    }

    private func check(host: String, port: Int, key: UnsafeRawBufferPointer, type: HostKeyType) -> Int32 {
        var entry: UnsafeMutablePointer<libssh2_knownhost>?
        let typeMask = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | type.knownHostBits
        return host.withCString { hostPointer in
            libssh2_knownhost_checkp(
                collection, hostPointer, Int32(port), key.baseAddress?.assumingMemoryBound(to: CChar.self),
                key.count, typeMask, &entry)
        }
    }

    /// The key types the files hold for `host:port` (plain or hashed names): checking a dummy key with a
    /// type's bits gives MISMATCH exactly when an entry of that type exists.
    func knownTypes(host: String, port: Int) -> [HostKeyType] {
        let dummy: [UInt8] = [0, 0, 0, 1, 0x2a]
        return dummy.withUnsafeBytes { bytes in
            HostKeyType.all.filter {
                check(host: host, port: port, key: bytes, type: $0) == LIBSSH2_KNOWNHOST_CHECK_MISMATCH
            }
        }
    }

    /// Whether the presented key is marked `@revoked` for this host.
    func isRevoked(key: UnsafeRawBufferPointer) -> Bool {
        revokedKeys.contains { $0.elementsEqual(key) }
    }

    /// `LIBSSH2_KNOWNHOST_CHECK_*` for the key the server presented, checked with its type bits so an
    /// entry of another type can never count as a mismatch.
    func verify(host: String, port: Int, key: UnsafeRawBufferPointer, type: HostKeyType) -> Int32 {
        check(host: host, port: port, key: key, type: type)
    }
}

/// `~/x` under the user's home. The CLI expands paths itself from its `LocalEnvironment`; this
/// covers library callers (and the `~/.ssh/known_hosts` default) by the same rule.
func expandTilde(_ path: String) -> String {
    guard path == "~" || path.hasPrefix("~/") else { return path }
    return passwordDatabaseHome + path.dropFirst()
}

/// The home directory from the password database, as OpenSSH takes it, else `$HOME`; read once.
private let passwordDatabaseHome: String = {
    if let entry = getpwuid(getuid()), let directory = entry.pointee.pw_dir { return String(cString: directory) }
    return getenv("HOME").map { String(cString: $0) } ?? NSHomeDirectory()
}()

/// The fingerprint as OpenSSH prints it: `SHA256:` + unpadded base64.
func openSSHFingerprint(sha256: [UInt8]) -> String {
    var encoded = Data(sha256).base64EncodedString()
    while encoded.hasSuffix("=") { encoded.removeLast() }
    return "SHA256:" + encoded
}
