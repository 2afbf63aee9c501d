import CLibSSH2
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

extension SSHSession {
    /// Uploads a local file, streaming it (never whole in memory), to a temporary name in the target's
    /// directory, sets `mode` exactly, fsyncs, then moves it into place with `mv -f` (libssh2 1.10's SFTP
    /// rename fails when the target exists), so readers see the old file or the new one, never half.
    public func upload(file localPath: String, to remotePath: String, mode: Int32 = 0o644) async throws {
        let fd = open(localPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            throw SSHError(
                endpoint: endpoint, operation: .upload, kind: .localFile(errno: e),
                message: "cannot open \(localPath): \(String(cString: strerror(e)))")
        }
        defer { Glibc.close(fd) }
        try await lock.withLock {
            try connection.ensureUsable(.upload)
            try await connection.upload(
                source: .file(fd, path: localPath), to: remotePath, mode: mode, openTimeout: connectTimeout)
        }
    }

    /// Uploads bytes with the same atomic replace as ``upload(file:to:mode:)``.
    public func upload(data: [UInt8], to remotePath: String, mode: Int32 = 0o644) async throws {
        try await lock.withLock {
            try connection.ensureUsable(.upload)
            try await connection.upload(source: .bytes(data), to: remotePath, mode: mode, openTimeout: connectTimeout)
        }
    }

    /// Downloads a remote file to `localPath`, streaming it (never whole in memory): written to a new
    /// temporary name beside it (created exclusively, never through a symlink), fsynced, then renamed, so
    /// `localPath` is the whole file or untouched. Keeps the remote permission bits.
    ///
    /// With `limit`, a file the server says is larger fails before a byte is read, and one that grows
    /// past it while being read fails there (``SSHError/Kind/fileTooLarge(size:limit:)``); nothing is
    /// left behind. Returns the bytes written.
    @discardableResult
    public func download(_ remotePath: String, to localPath: String, limit: Int? = nil) async throws -> Int {
        try await lock.withLock {
            try connection.ensureUsable(.download)
            return try await connection.download(remotePath, to: localPath, limit: limit, openTimeout: connectTimeout)
        }
    }
}

/// Where upload bytes come from.
enum UploadSource {
    case file(Int32, path: String)
    case bytes([UInt8])

    /// Bytes to upload, if known.
    var size: Int? {
        switch self {
        case .bytes(let bytes): return bytes.count
        case .file(let fd, _):
            var info = stat()
            return fstat(fd, &info) == 0 ? Int(info.st_size) : nil
        }
    }
}

extension SessionConnection {
    /// Per-call deadline for SFTP requests: generous, since a slow disk is not a dead host.
    private static let sftpRequestTimeout: Duration = .seconds(120)
    /// Bytes handed to one `libssh2_sftp_write`: 1.10 cuts them into ~30 kB packets and keeps them all in
    /// flight, so a large buffer is what makes uploads fast.
    private static let uploadWindow = 4 * 1024 * 1024

    func sftpError(_ operation: SSHError.Operation, _ context: String) -> SSHError {
        let (code, message) = lastError(session)
        if code == LIBSSH2_ERROR_SFTP_PROTOCOL, let sftp {
            let status = libssh2_sftp_last_error(sftp)
            return SSHError(
                endpoint: endpoint, operation: operation, kind: .sftp(status: status), code: code,
                message: "\(context): \(sftpStatusName(status))",
                remedy: status == LIBSSH2_FX_PERMISSION_DENIED ? "check \(endpoint.user) may write there" : nil)
        }
        return SSHError(
            endpoint: endpoint, operation: operation, kind: kindForLibSSH2Code(code), code: code,
            message: "\(context): \(message)")
    }

    private func ensureSFTP(_ operation: SSHError.Operation, openTimeout: Duration) async throws -> OpaquePointer {
        if let sftp { return sftp }
        do {
            guard
                let started = try await callPointer(
                    operation, "starting SFTP", deadline: .now + openTimeout,
                    timeoutKind: .channelFailure, { libssh2_sftp_init(session) })
            else { throw error(operation, "the server refused the SFTP subsystem", kind: .channelFailure) }
            sftp = started
            return started
        } catch {
            unusableReason = unusableReason ?? "SFTP start-up was abandoned (\(error))"
            throw error
        }
    }

    private func openRemote(
        _ operation: SSHError.Operation, _ sftp: OpaquePointer, _ path: String, flags: Int32, mode: Int32
    ) async throws -> OpaquePointer {
        guard
            let handle = try await callPointer(
                operation, "opening \(path)", deadline: .now + Self.sftpRequestTimeout,
                timeoutKind: .sessionClosed,
                {
                    libssh2_sftp_open_ex(
                        sftp, path, UInt32(path.utf8.count), UInt(flags), Int(mode), LIBSSH2_SFTP_OPENFILE)
                })
        else { throw sftpError(operation, "cannot open \(path)") }
        return handle
    }

    private func closeRemote(_ handle: OpaquePointer) async {
        _ = try? await call(
            .upload, "closing a remote file", deadline: .now + .seconds(5), timeoutKind: .sessionClosed,
            cancellable: false
        ) { libssh2_sftp_close_handle(handle) }
    }

    func upload(source: UploadSource, to remotePath: String, mode: Int32, openTimeout: Duration) async throws {
        let sftp = try await ensureSFTP(.upload, openTimeout: openTimeout)
        let slash = remotePath.lastIndex(of: "/")
        let directory = slash.map { String(remotePath[...$0]) } ?? ""
        let name = slash.map { String(remotePath[remotePath.index(after: $0)...]) } ?? remotePath
        let temporary = "\(directory).\(name).govuk-fab-\(UInt32.random(in: 0...UInt32.max))"
        let handle = try await openRemote(
            .upload, sftp, temporary,
            flags: LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC | LIBSSH2_FXF_EXCL, mode: 0o600)
        var handleOpen = true
        do {
            try await write(source, to: handle, path: temporary)
            // Set the mode explicitly: open's mode is filtered by sftp-server's umask.
            var attributes = LIBSSH2_SFTP_ATTRIBUTES()
            attributes.flags = UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS)
            attributes.permissions = UInt(mode & 0o7777)
            var rc = try await call(
                .upload, "setting the mode", deadline: .now + Self.sftpRequestTimeout, timeoutKind: .sessionClosed
            ) {
                libssh2_sftp_fstat_ex(handle, &attributes, 1)
            }
            guard rc == 0 else { throw sftpError(.upload, "cannot set mode of \(temporary)") }
            rc = try await call(.upload, "fsync", deadline: .now + Self.sftpRequestTimeout, timeoutKind: .sessionClosed)
            {
                libssh2_sftp_fsync(handle)
            }
            guard rc == 0 else { throw sftpError(.upload, "fsync of \(temporary) failed") }
            rc = try await call(
                .upload, "closing the file", deadline: .now + Self.sftpRequestTimeout, timeoutKind: .sessionClosed
            ) {
                libssh2_sftp_close_handle(handle)
            }
            handleOpen = false
            guard rc == 0 else { throw sftpError(.upload, "closing \(temporary) failed") }
            let collector = OutputCollector()
            let move = try await execute(
                "mv -f -- \(shellQuote(temporary)) \(shellQuote(remotePath))", timeout: nil, openTimeout: openTimeout,
                onOutput: { collector.append($0) })
            guard move.succeeded else {
                let stderr = String(decoding: collector.contents.1, as: UTF8.self).trimmingCharacters(
                    in: .whitespacesAndNewlines)
                throw SSHError(
                    endpoint: endpoint, operation: .upload, kind: .protocolError,
                    message: "moving \(temporary) to \(remotePath) failed (exit \(move.exitStatus)): \(stderr)")
            }
        } catch {
            if handleOpen { await closeRemote(handle) }
            if unusableReason == nil {
                _ = try? await call(
                    .upload, "removing the temporary file", deadline: .now + .seconds(5),
                    timeoutKind: .sessionClosed, cancellable: false
                ) {
                    libssh2_sftp_unlink_ex(sftp, temporary, UInt32(temporary.utf8.count))
                }
            }
            throw await explained(
                error, directory: directory.isEmpty ? "." : directory, needed: source.size,
                openTimeout: openTimeout)
        }
    }

    /// SFTP version 3 (OpenSSH's sftp-server) reports ENOSPC, EDQUOT, EROFS and most others as a bare
    /// `SSH_FX_FAILURE`. For that status, asks the host what is wrong with the directory (exists,
    /// writable, free space) and names the cause; any other error comes back unchanged.
    private func explained(_ error: any Error, directory: String, needed: Int?, openTimeout: Duration) async
        -> any Error
    {
        guard let sftpError = error as? SSHError, case .sftp(let status) = sftpError.kind, status == LIBSSH2_FX_FAILURE,
            unusableReason == nil
        else { return error }
        let collector = OutputCollector()
        let probe = """
            d=\(shellQuote(directory)); df -Pk "$d" 2>/dev/null | awk 'NR==2 {print "free_kib=" $4}'
            [ -d "$d" ] || echo missing=1; [ -w "$d" ] || echo not_writable=1
            true
            """
        guard
            let result = try? await execute(
                probe, timeout: .seconds(10), openTimeout: openTimeout,
                onOutput: { collector.append($0) }), result.succeeded
        else { return error }
        let facts = String(decoding: collector.contents.0, as: UTF8.self).split(separator: "\n")
        let free = facts.first { $0.hasPrefix("free_kib=") }.flatMap { Int($0.dropFirst("free_kib=".count)) }
        let cause: String
        let remedy: String
        if facts.contains("missing=1") {
            cause = "\(directory) does not exist on the host"
            remedy = "create it first"
        } else if facts.contains("not_writable=1") {
            cause = "\(endpoint.user) may not write to \(directory) (permission, or a read-only filesystem)"
            remedy = "check its owner and mode, and that it is mounted read-write"
        } else if let free, free < 1024 || needed.map({ free * 1024 < $0 }) == true {
            // (Measured after the partial file was removed: less free than the file needs.)
            cause =
                "no space left on the host's filesystem for \(directory) (\(free) KiB free"
                + (needed.map { ", \(($0 + 1023) / 1024) KiB needed)" } ?? ")")
            remedy = "free some space there (df -h \(directory)), then run again; the partial file was removed"
        } else {
            return error
        }
        return SSHError(
            endpoint: endpoint, operation: sftpError.operation, kind: sftpError.kind, code: sftpError.code,
            message: "\(sftpError.message): \(cause)", remedy: remedy)
    }

    /// Keeps one large window of unacknowledged bytes in front of `libssh2_sftp_write`, which skips the
    /// bytes it already has in flight and returns how many the server acknowledged.
    private func write(_ source: UploadSource, to handle: OpaquePointer, path: String) async throws {
        /// One write attempt: bytes acknowledged, or nil if libssh2 would block.
        func attempt(_ pointer: UnsafeRawPointer, _ count: Int) throws -> Int? {
            let n = libssh2_sftp_write(handle, pointer.assumingMemoryBound(to: CChar.self), count)
            if n == Int(LIBSSH2_ERROR_EAGAIN) { return nil }
            if n < 0 { throw sftpError(.upload, "writing \(path) failed") }
            return n
        }
        func waitWritable() async throws {
            if try await !waitForSocket(deadline: .now + Self.sftpRequestTimeout) {
                throw SSHError(
                    endpoint: endpoint, operation: .upload, kind: .sessionClosed,
                    message: "writing \(path) stalled for \(Self.sftpRequestTimeout)")
            }
        }
        switch source {
        case .bytes(let bytes):
            var offset = 0
            while offset < bytes.count {
                let window = min(Self.uploadWindow, bytes.count - offset)
                let acknowledged = try bytes.withUnsafeBytes { raw in try attempt(raw.baseAddress! + offset, window) }
                if let acknowledged { offset += acknowledged } else { try await waitWritable() }
            }
        case .file(let fd, let localPath):
            let capacity = 2 * Self.uploadWindow
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
            defer { buffer.deallocate() }
            var start = 0
            var end = 0
            var atEOF = false
            while true {
                if !atEOF && end - start < Self.uploadWindow {
                    if start > 0 {
                        memmove(buffer, buffer + start, end - start)
                        end -= start
                        start = 0
                    }
                    while end < capacity {
                        let n = read(fd, buffer + end, capacity - end)
                        if n == 0 {
                            atEOF = true
                            break
                        }
                        if n < 0 {
                            if errno == EINTR { continue }
                            let e = errno
                            throw SSHError(
                                endpoint: endpoint, operation: .upload, kind: .localFile(errno: e),
                                message: "reading \(localPath) failed: \(String(cString: strerror(e)))")
                        }
                        end += n
                    }
                }
                if start == end && atEOF { return }
                if let acknowledged = try attempt(buffer + start, min(Self.uploadWindow, end - start)) {
                    start += acknowledged
                } else {
                    try await waitWritable()
                }
            }
        }
    }

    func download(_ remotePath: String, to localPath: String, limit: Int?, openTimeout: Duration) async throws -> Int {
        let sftp = try await ensureSFTP(.download, openTimeout: openTimeout)
        let handle = try await openRemote(.download, sftp, remotePath, flags: LIBSSH2_FXF_READ, mode: 0)
        var attributes = LIBSSH2_SFTP_ATTRIBUTES()
        let statRC: Int32
        do {
            statRC = try await call(
                .download, "stat", deadline: .now + Self.sftpRequestTimeout, timeoutKind: .sessionClosed
            ) {
                libssh2_sftp_fstat_ex(handle, &attributes, 0)
            }
        } catch {
            await closeRemote(handle)
            throw error
        }
        let mode =
            statRC == 0 && attributes.flags & UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS) != 0
            ? mode_t(attributes.permissions & 0o7777) : 0o644
        if let limit, statRC == 0, attributes.flags & UInt(LIBSSH2_SFTP_ATTR_SIZE) != 0,
            attributes.filesize > UInt64(limit)
        {
            await closeRemote(handle)
            throw tooLarge(remotePath, size: Int(clamping: attributes.filesize), limit: limit, grew: false)
        }
        let temporary = "\(localPath).govuk-fab-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let e = errno
            await closeRemote(handle)
            throw SSHError(
                endpoint: endpoint, operation: .download, kind: .localFile(errno: e),
                message: "cannot create \(temporary): \(String(cString: strerror(e)))")
        }
        var fdOpen = true
        var total = 0
        do {
            let capacity = 1024 * 1024
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: capacity)
            defer { buffer.deallocate() }
            while true {
                let n = libssh2_sftp_read(handle, buffer, capacity)
                if n == Int(LIBSSH2_ERROR_EAGAIN) {
                    if try await !waitForSocket(deadline: .now + Self.sftpRequestTimeout) {
                        throw SSHError(
                            endpoint: endpoint, operation: .download, kind: .sessionClosed,
                            message: "reading \(remotePath) stalled for \(Self.sftpRequestTimeout)")
                    }
                    continue
                }
                if n < 0 { throw sftpError(.download, "reading \(remotePath) failed") }
                if n == 0 { break }
                total += n
                if let limit, total > limit { throw tooLarge(remotePath, size: total, limit: limit, grew: true) }
                var written = 0
                while written < n {
                    let w = Glibc.write(fd, buffer + written, n - written)
                    if w < 0 {
                        if errno == EINTR { continue }
                        let e = errno
                        throw SSHError(
                            endpoint: endpoint, operation: .download, kind: .localFile(errno: e),
                            message: "writing \(temporary) failed: \(String(cString: strerror(e)))")
                    }
                    written += w
                }
            }
            await closeRemote(handle)
            fchmod(fd, mode)
            let syncFailed = fsync(fd) != 0
            Glibc.close(fd)
            fdOpen = false
            if syncFailed || rename(temporary, localPath) != 0 {
                let e = errno
                throw SSHError(
                    endpoint: endpoint, operation: .download, kind: .localFile(errno: e),
                    message: "cannot move \(temporary) to \(localPath): \(String(cString: strerror(e)))")
            }
            return total
        } catch {
            if fdOpen {
                Glibc.close(fd)
                await closeRemote(handle)
            }
            unlink(temporary)
            throw error
        }
    }

    private func tooLarge(_ remotePath: String, size: Int, limit: Int, grew: Bool) -> SSHError {
        let what =
            grew ? "grew past \(limit) bytes while being read" : "is \(size) bytes, more than the \(limit) allowed"
        return SSHError(
            endpoint: endpoint, operation: .download, kind: .fileTooLarge(size: size, limit: limit),
            message: "\(remotePath) \(what)", remedy: "raise the limit or fetch a smaller file")
    }
}

/// The SFTP status names of draft-ietf-secsh-filexfer-02, in words.
func sftpStatusName(_ status: UInt) -> String {
    switch status {
    case LIBSSH2_FX_EOF: "end of file"
    case LIBSSH2_FX_NO_SUCH_FILE: "no such file"
    case LIBSSH2_FX_PERMISSION_DENIED: "permission denied"
    case LIBSSH2_FX_FAILURE: "failure (the server gave no detail)"
    case LIBSSH2_FX_BAD_MESSAGE: "bad message"
    case LIBSSH2_FX_OP_UNSUPPORTED: "operation unsupported by the server"
    case LIBSSH2_FX_NO_SUCH_PATH: "no such path"
    case LIBSSH2_FX_FILE_ALREADY_EXISTS: "file already exists"
    case LIBSSH2_FX_WRITE_PROTECT: "write-protected"
    case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM: "no space left on the filesystem"
    case LIBSSH2_FX_QUOTA_EXCEEDED: "quota exceeded"
    case LIBSSH2_FX_NOT_A_DIRECTORY: "not a directory"
    case LIBSSH2_FX_INVALID_FILENAME: "invalid file name"
    default: "SFTP status \(status)"
    }
}
