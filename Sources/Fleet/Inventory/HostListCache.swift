import Foundation

/// One live source's validated answer to one query, as kept on disk.
struct HostListAnswer: Codable, Sendable, Equatable {
    struct Entry: Codable, Sendable, Equatable {
        var name: String
        var address: String
        var nodeClass: String?
    }

    /// The source and query the answer belongs to; a file whose key differs is not used.
    var key: String
    var fetched: Date
    var hosts: [Entry]
}

/// Host lists cached under the user's cache directory: JSON files, mode 0600, in a directory
/// of mode 0700, opened without following symlinks, fresh by the time written inside the
/// file (not the file's mtime, which a symlink or `touch` could fake), keyed by source and query.
struct HostListCache: Sendable {
    var directory: String
    /// Larger files are not ours: a host list is a few KiB.
    static let maximumFileSize = 16 << 20

    /// The file for a key: a readable prefix and a hash of the whole key.
    func path(for key: String) -> String {
        let readable = String(key.prefix(60).map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") ? $0 : "_" })
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return directory + "/" + readable + "-" + String(hash, radix: 16) + ".json"
    }

    /// The cached answer for `key` when it exists, is ours, is intact and younger than `ttl`.
    func read(key: String, ttl: Duration, now: Date) -> HostListAnswer? {
        let file = path(for: key)
        let fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_uid == geteuid(),
            info.st_mode & 0o077 == 0, info.st_size <= Self.maximumFileSize
        else { return nil }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
        guard let data = try? handle.readToEnd(),
            let answer = try? Self.decoder.decode(HostListAnswer.self, from: data),
            answer.key == key
        else { return nil }
        let age = now.timeIntervalSince(answer.fetched)
        guard age >= -60, age < Double(ttl.components.seconds) else { return nil }
        return answer
    }

    /// Writes `answer` atomically (a private temporary file renamed over the old one).
    func write(_ answer: HostListAnswer) throws {
        try Self.makePrivateDirectory(directory)
        let file = path(for: answer.key)
        let temporary = file + ".\(getpid()).tmp"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: temporary]) }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        do {
            try handle.write(contentsOf: try Self.encoder.encode(answer))
            try handle.close()
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, file) == 0 else {
            unlink(temporary)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: file])
        }
    }

    /// Creates `path` (and its parents) and makes sure the last component is a real directory of
    /// ours that nobody else can read or write.
    static func makePrivateDirectory(_ path: String) throws {
        try FileManager.default.createDirectory(
            atPath: path, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == geteuid() else {
            throw CocoaError(
                .fileWriteNoPermission,
                userInfo: [
                    NSFilePathErrorKey: path, NSLocalizedDescriptionKey: "\(path) is not a directory of this user's",
                ])
        }
        if info.st_mode & 0o077 != 0 { chmod(path, 0o700) }
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}
