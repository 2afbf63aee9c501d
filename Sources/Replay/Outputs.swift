import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A destination for messages: an HTTP target, a `.gor` file, stdout.
///
/// `emit` is called from the pipeline and must never wait on the network:
/// outputs that cannot keep up drop and count (see `ReplayStatistics`).
public protocol MessageOutput: AnyObject, Sendable {
    /// For logs and stats, e.g. `http://staging:80`.
    var name: String { get }
    func emit(_ message: ReplayMessage)
    /// Writes buffered data out (called periodically and before exit).
    func flush()
    /// Finishes queued work for at most `grace`, then releases resources.
    func close(grace: Duration) async
    /// Counts a message the output's `|N` limit turned away.
    func recordRateLimited()
}

/// Writes `.gor` framing to a file descriptor through a buffer.
struct BufferedDescriptorWriter {
    let descriptor: Int32
    let path: String
    private(set) var buffer: [UInt8] = []
    /// Set when writing gzip (a `.gz` name): one member per open file.
    private let deflater: GzipDeflater?
    static let flushThreshold = 64 * 1024

    init(descriptor: Int32, path: String, deflater: GzipDeflater? = nil) {
        self.descriptor = descriptor
        self.path = path
        self.deflater = deflater
        buffer.reserveCapacity(Self.flushThreshold * 2)
    }

    mutating func append(_ message: ReplayMessage) throws(FileIOError) {
        GorFormat.encode(message, into: &buffer)
        if buffer.count >= Self.flushThreshold { try flush(.none) }
    }

    /// Writes the buffer out. For gzip, `.sync` makes all records so far
    /// readable and `.finish` ends the member; plain files ignore it.
    mutating func flush(_ mode: GzipDeflater.Flush = .sync) throws(FileIOError) {
        let bytes = deflater.map { $0.compress(buffer, flush: mode) } ?? buffer
        buffer.removeAll(keepingCapacity: true)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                write(descriptor, raw.baseAddress! + offset, raw.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw FileIOError(path: path, operation: "write", code: errno)
            }
            offset += written
        }
    }
}

/// `--output-stdout`: the same framing as a file, on standard output.
public final class StdoutOutput: MessageOutput {
    public func recordRateLimited() { statistics.updateOutput(slot) { $0.droppedRateLimit += 1 } }

    public let name = "stdout"
    private let writer: NIOLockedValueBox<BufferedDescriptorWriter>
    private let statistics: ReplayStatistics
    private let slot: Int

    public init(statistics: ReplayStatistics, descriptor: Int32 = STDOUT_FILENO) {
        self.writer = NIOLockedValueBox(BufferedDescriptorWriter(descriptor: descriptor, path: "stdout"))
        self.statistics = statistics
        self.slot = statistics.registerOutput(name: "stdout")
    }

    public func emit(_ message: ReplayMessage) {
        let ok = writer.withLockedValue { writer in
            do {
                try writer.append(message)
                return true
            } catch { return false }
        }
        statistics.updateOutput(slot) {
            if ok { $0.sent += 1 } else { $0.failed += 1 }
        }
    }

    public func flush() {
        writer.withLockedValue { try? $0.flush() }
    }

    public func close(grace: Duration) async { flush() }
}

/// `--output-null`: counts and discards.
public final class NullOutput: MessageOutput {
    public func recordRateLimited() { statistics.updateOutput(slot) { $0.droppedRateLimit += 1 } }

    public let name = "null"
    private let statistics: ReplayStatistics
    private let slot: Int

    public init(statistics: ReplayStatistics) {
        self.statistics = statistics
        self.slot = statistics.registerOutput(name: "null")
    }

    public func emit(_ message: ReplayMessage) {
        statistics.updateOutput(slot) { $0.sent += 1 }
    }

    public func flush() {}
    public func close(grace: Duration) async {}
}

/// Settings of `--output-file`.
public struct FileOutputOptions: Sendable {
    /// `--output-file-append`: one file per rendered name, no `_N` chunks.
    public var append = false
    /// `--output-file-size-limit` (bytes; 0 = none). Default 32 MiB.
    public var sizeLimit: Int64 = 32 * 1024 * 1024
    /// `--output-file-queue-limit` (records per chunk; 0 = none). Default 256.
    public var queueLimit = 256
    /// `--output-file-max-size-limit`: total bytes this output may write.
    public var maxTotalSize: Int64 = 1 << 40
    /// `--output-file-flush-interval`.
    public var flushInterval: Duration = .seconds(1)

    public init() {}
}

/// `--output-file`: appends `.gor` records; the name may hold date patterns
/// (`%Y %m %d %H %M %S %NS`), `%t` (type), `%r` (request id), `%i` (instance
/// id). Without `--output-file-append` files are chunked `name_0.gor`,
/// `name_1.gor`, … rotating on size or record count. Existing files are
/// appended to, never truncated (GoReplay truncates).
public final class FileOutput: MessageOutput {
    public func recordRateLimited() { statistics.updateOutput(slot) { $0.droppedRateLimit += 1 } }

    public let name: String
    private let template: String
    private let options: FileOutputOptions
    private let instanceID: String
    private let statistics: ReplayStatistics
    private let slot: Int
    private let state: NIOLockedValueBox<State>

    private struct State {
        var writer: BufferedDescriptorWriter?
        var renderedName = ""
        var chunkIndex = 0
        var size: Int64 = 0
        var records = 0
        var totalWritten: Int64 = 0
        var lastError: FileIOError?
    }

    public init(template: String, options: FileOutputOptions, statistics: ReplayStatistics) {
        self.name = "file:\(template)"
        self.template = template
        self.options = options
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        self.instanceID = String((0..<8).map { _ in letters.randomElement() ?? "a" })
        self.statistics = statistics
        self.slot = statistics.registerOutput(name: "file:\(template)")
        self.state = NIOLockedValueBox(State())
    }

    /// The file name for a message written now, before chunk suffixes.
    public func renderName(for message: ReplayMessage, now: Int64 = wallNanoseconds()) -> String {
        guard template.contains("%") else { return template }
        var seconds = time_t(now / 1_000_000_000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        var result = ""
        var characters = Substring(template)
        while let character = characters.first {
            characters.removeFirst()
            guard character == "%", let token = characters.first else {
                result.append(character)
                continue
            }
            switch token {
            case "Y": result += "\(parts.tm_year + 1900)"
            case "m": result += two(parts.tm_mon + 1)
            case "d": result += two(parts.tm_mday)
            case "H": result += two(parts.tm_hour)
            case "M": result += two(parts.tm_min)
            case "S": result += two(parts.tm_sec)
            case "N" where characters.dropFirst().first == "S":
                // Go's time.Now().Nanosecond(): within the second, unpadded.
                result += "\(now % 1_000_000_000)"
                characters.removeFirst()
            case "t": result += "\(message.type.rawValue)"
            case "r": result += message.id
            case "i": result += instanceID
            default:
                result.append("%")
                result.append(token)
            }
            characters.removeFirst()
        }
        return result
    }

    /// `requests.gor` → `requests_3.gor`.
    public static func chunkName(_ name: String, index: Int) -> String {
        let slash = name.lastIndex(of: "/")
        if let dot = name.lastIndex(of: "."), slash.map({ dot > $0 }) ?? true, dot != name.startIndex {
            return "\(name[..<dot])_\(index)\(name[dot...])"
        }
        return "\(name)_\(index)"
    }

    public func emit(_ message: ReplayMessage) {
        let rendered = renderName(for: message)
        let recordSize = Int64(
            GorFormat.metaLine(of: message).utf8.count + 1 + message.payload.count + GorFormat.separator.count)
        let result: Result<Void, FileIOError> = state.withLockedValue { state in
            do throws(FileIOError) {
                if state.totalWritten + recordSize > options.maxTotalSize { return .success(()) }
                if state.writer == nil || rendered != state.renderedName {
                    try closeCurrent(&state)
                    state.renderedName = rendered
                    state.chunkIndex = 0
                    try openChunk(&state)
                }
                if !options.append {
                    while (options.sizeLimit > 0 && state.size > 0 && state.size + recordSize > options.sizeLimit)
                        || (options.queueLimit > 0 && state.records >= options.queueLimit)
                    {
                        try closeCurrent(&state)
                        state.chunkIndex += 1
                        try openChunk(&state)
                    }
                }
                try state.writer?.append(message)
                state.size += recordSize
                state.totalWritten += recordSize
                state.records += 1
                return .success(())
            } catch {
                state.lastError = error
                return .failure(error)
            }
        }
        switch result {
        case .success: statistics.updateOutput(slot) { $0.sent += 1 }
        case .failure(let error):
            statistics.updateOutput(slot) { counters in
                counters.failed += 1
                let reason = error.description
                if counters.failureReasons.count < 10 || counters.failureReasons[reason] != nil {
                    counters.failureReasons[reason, default: 0] += 1
                }
            }
        }
    }

    private func openChunk(_ state: inout State) throws(FileIOError) {
        while true {
            let path = options.append ? state.renderedName : Self.chunkName(state.renderedName, index: state.chunkIndex)
            // Recorded traffic holds cookies and Authorization headers: the file is the user's
            // alone, and a symlink planted at its name is not followed.
            let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard descriptor >= 0 else {
                let code = errno
                throw FileIOError(
                    path: path, operation: "open", code: code,
                    detail: code == ELOOP
                        ? "is a symbolic link; goreplay writes recorded traffic only to a plain file" : nil)
            }
            var info = stat()
            fstat(descriptor, &info)
            guard info.st_mode & S_IFMT == S_IFREG else {
                Glibc.close(descriptor)
                throw FileIOError(path: path, operation: "open", code: EINVAL, detail: "is not a regular file")
            }
            let existing = Int64(info.st_size)
            // Continue after chunks a previous run filled.
            if !options.append && options.sizeLimit > 0 && existing >= options.sizeLimit {
                Glibc.close(descriptor)
                state.chunkIndex += 1
                continue
            }
            do {
                let deflater = Gzip.isGzipName(path) ? try GzipDeflater(path: path) : nil
                state.writer = BufferedDescriptorWriter(descriptor: descriptor, path: path, deflater: deflater)
            } catch {
                Glibc.close(descriptor)
                throw error
            }
            state.size = existing
            state.records = 0
            return
        }
    }

    private func closeCurrent(_ state: inout State) throws(FileIOError) {
        guard var writer = state.writer.take() else { return }
        defer { Glibc.close(writer.descriptor) }
        try writer.flush(.finish)
    }

    /// The path currently written to, if any.
    public var currentPath: String? {
        state.withLockedValue { state in
            guard state.writer != nil else { return nil }
            return options.append ? state.renderedName : Self.chunkName(state.renderedName, index: state.chunkIndex)
        }
    }

    public func flush() {
        state.withLockedValue { state in
            do throws(FileIOError) { try state.writer?.flush() } catch { state.lastError = error }
        }
    }

    public func close(grace: Duration) async {
        state.withLockedValue { state in
            do throws(FileIOError) { try closeCurrent(&state) } catch { state.lastError = error }
        }
    }
}
