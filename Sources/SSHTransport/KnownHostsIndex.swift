import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One known_hosts file, parsed once and indexed by host name.
///
/// Entries whose host patterns are all plain names (`host`, `[host]:port`) are found through a
/// dictionary; hashed (`|1|`), wildcard and negated entries are kept in a list checked for every
/// host. Either way the caller still decides with ``KnownHostsEntry/matches(_:)``: the index only
/// narrows which entries that runs on, so OpenSSH's rules are applied exactly as before.
struct KnownHostsIndex: Sendable {
    struct Line: Sendable {
        let entry: KnownHostsEntry
        let lineNumber: Int
        /// The decoded key, kept for `@revoked` lines (compared with what the server presents).
        let revokedBlob: [UInt8]?
    }

    /// Usable entries (plain and `@revoked`) in file order.
    private(set) var lines: [Line] = []
    /// Indexes into `lines` under each lower-cased plain pattern.
    private(set) var byName: [String: [Int]] = [:]
    /// Indexes into `lines` of hashed, wildcard and negated entries.
    private(set) var general: [Int] = []
    /// Warnings about lines that were skipped, naming `path:line`.
    private(set) var warnings: [String] = []

    init(bytes: [UInt8], path: String) {
        var lineNumber = 0
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = trimmedASCII(rawLine)
            guard let first = line.first, first != UInt8(ascii: "#") else { continue }
            if first == UInt8(ascii: "@") {
                // OpenSSH refuses a key listed as @revoked for the host even when another line lists it.
                guard let entry = KnownHostsEntry(line: Substring(decoding: line, as: UTF8.self)),
                    entry.marker == .revoked
                else {
                    warnings.append(
                        "\(path):\(lineNumber): @cert-authority (host certificates) is not supported by libssh2 1.10; line skipped"
                    )
                    continue
                }
                if let blob = entry.keyBlob { add(Line(entry: entry, lineNumber: lineNumber, revokedBlob: blob)) }
                continue
            }
            // libssh2 keeps lines with unknown key types; reject lines that cannot be entries at all.
            let fields = line.split(whereSeparator: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") })
            guard fields.count >= 3, looksLikeBase64(fields[2]),
                let entry = KnownHostsEntry(line: Substring(decoding: line, as: UTF8.self))
            else {
                warnings.append(
                    "\(path):\(lineNumber): skipping malformed known_hosts line (expected: host-patterns key-type base64-key)"
                )
                continue
            }
            add(Line(entry: entry, lineNumber: lineNumber, revokedBlob: nil))
        }
    }

    private mutating func add(_ line: Line) {
        let index = lines.count
        lines.append(line)
        let patterns = line.entry.patterns
        if patterns.hasPrefix("|1|") || patterns.contains(where: { $0 == "*" || $0 == "?" || $0 == "!" }) {
            general.append(index)
            return
        }
        // Without wildcards or negation a pattern matches only a name equal to it (lower-cased).
        for pattern in patterns.split(separator: ",") {
            byName[pattern.lowercased(), default: []].append(index)
        }
    }

    /// Indexes of the lines that may name one of `names` (lower-cased), in file order, each once.
    func candidates(for names: [String]) -> [Int] {
        var found = general
        for name in names { found += byName[name] ?? [] }
        return Set(found).sorted()
    }
}

/// known_hosts files parsed once per process: a file is read again only when its device, inode,
/// size, modification or change time differ from the parsed copy's, so a key added by ssh-keyscan
/// during a run is seen by the next connect. govuk-fab itself never writes known_hosts.
enum KnownHostsCache {
    struct Identity: Equatable, Sendable {
        let device: UInt64, inode: UInt64, size: Int64
        let mtime: timespec, ctime: timespec

        init(_ info: stat) {
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            size = Int64(info.st_size)
            mtime = info.st_mtim
            ctime = info.st_ctim
        }

        static func == (a: Identity, b: Identity) -> Bool {
            a.device == b.device && a.inode == b.inode && a.size == b.size
                && a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec
                && a.ctime.tv_sec == b.ctime.tv_sec && a.ctime.tv_nsec == b.ctime.tv_nsec
        }
    }

    struct Cached: Sendable {
        let identity: Identity
        let bytes: [UInt8]
        let index: KnownHostsIndex
        /// Modified so recently that a later write may keep the same size and time stamp (file times
        /// are coarse): the bytes are compared again on the next use rather than trusted.
        let racy: Bool
        /// How many times this path was parsed, for tests.
        let parses: Int
    }

    private static let files = Mutex<[String: Cached]>([:])

    /// How many times the file at `path` was parsed while cached, for tests.
    static func parses(of path: String) -> Int { files.withLock { $0[path]?.parses ?? 0 } }

    enum Outcome {
        case parsed(KnownHostsIndex)
        case missing
        case unreadable(String)
    }

    /// The parsed file at `path` (already `~`-expanded), from the cache when it has not changed.
    static func index(path: String) -> Outcome {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            return code == ENOENT || code == ENOTDIR ? .missing : .unreadable(String(cString: strerror(code)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .unreadable(String(cString: strerror(errno))) }
        let identity = Identity(info)
        let cached = files.withLock { $0[path] }
        if let cached, cached.identity == identity, !cached.racy { return .parsed(cached.index) }

        guard let bytes = readAll(fd, sizeHint: Int(info.st_size)) else {
            return .unreadable(String(cString: strerror(errno)))
        }
        let index: KnownHostsIndex
        var parses = cached?.parses ?? 0
        if let cached, cached.bytes == bytes {
            index = cached.index
        } else {
            index = KnownHostsIndex(bytes: bytes, path: path)
            parses += 1
        }
        // A file still being appended to (read length differs from the size seen) is not cached.
        if bytes.count == Int(info.st_size) {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            let racy = now.tv_sec - info.st_mtim.tv_sec < 2 || now.tv_sec - info.st_ctim.tv_sec < 2
            files.withLock {
                $0[path] = Cached(identity: identity, bytes: bytes, index: index, racy: racy, parses: parses)
            }
        } else {
            files.withLock { _ = $0.removeValue(forKey: path) }
        }
        return .parsed(index)
    }

    private static func readAll(_ fd: Int32, sizeHint: Int) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(max(sizeHint, 0) + 1)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }
}

/// The line without leading and trailing ASCII whitespace (including a CR from CRLF files).
func trimmedASCII(_ line: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
    let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0d || $0 == 0x0b || $0 == 0x0c }
    guard let start = line.firstIndex(where: { !isSpace($0) }), let end = line.lastIndex(where: { !isSpace($0) })
    else { return [] }
    return line[start...end]
}

/// Standard base64 alphabet, padded to a multiple of 4.
func looksLikeBase64(_ field: ArraySlice<UInt8>) -> Bool {
    guard !field.isEmpty, field.count % 4 == 0 else { return false }
    return field.allSatisfy { byte in
        (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte) || (0x30...0x39).contains(byte)
            || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "=")
    }
}
