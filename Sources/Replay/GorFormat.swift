import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// GoReplay's `.gor` record framing: a meta line, the raw payload, a separator.
///
///     <type> <id> <timestamp-ns> [<latency-ns>]\n<payload>\n🐵🙈🙉\n
///
/// The same framing is used by `--output-stdout`.
public enum GorFormat {
    /// `"\n🐵🙈🙉\n"` — ends every record.
    public static let separator: [UInt8] = Array("\n🐵🙈🙉\n".utf8)

    /// The meta line without its newline. Three fields when `latency` is nil,
    /// as GoReplay 0.16 wrote requests, so such records round-trip byte for byte.
    public static func metaLine(of message: ReplayMessage) -> String {
        var line = "\(message.type.rawValue) \(message.id) \(message.timestamp)"
        if let latency = message.latency { line += " \(latency)" }
        return line
    }

    /// Appends the framed record to `output`.
    public static func encode(_ message: ReplayMessage, into output: inout [UInt8]) {
        output.append(contentsOf: metaLine(of: message).utf8)
        output.append(0x0A)
        output.append(contentsOf: message.payload)
        output.append(contentsOf: separator)
    }

    /// The framed record as bytes.
    public static func encode(_ message: ReplayMessage) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(message.payload.count + 80)
        encode(message, into: &bytes)
        return bytes
    }

    /// Parses one record: the bytes between two separators.
    public static func decodeRecord(_ record: ArraySlice<UInt8>) throws(GorRecordError) -> ReplayMessage {
        guard let newline = record.firstIndex(of: 0x0A) else { throw .missingMetaLine }
        // Split the meta line on spaces without building intermediate strings
        // or an array: only the first four fields are read.
        var fields = MetaFields()
        var start = record.startIndex
        var position = start
        while position <= newline {
            if position == newline || record[position] == 0x20 {
                if position > start { fields.append(start..<position) }
                start = position + 1
            }
            position += 1
        }
        func metaText() -> String { String(decoding: record[record.startIndex..<newline], as: UTF8.self) }
        guard fields.count >= 3 else { throw .malformedMeta(metaText()) }
        let typeField = record[fields[0]]
        guard typeField.count == 1, let type = PayloadType(rawValue: typeField[typeField.startIndex] &- 0x30) else {
            throw .unknownType(String(decoding: typeField.prefix(10), as: UTF8.self))
        }
        guard let timestamp = parseInt64(record[fields[2]]) else { throw .malformedMeta(metaText()) }
        var latency: Int64?
        if fields.count >= 4 {
            guard let value = parseInt64(record[fields[3]]) else { throw .malformedMeta(metaText()) }
            latency = value
        }
        guard let id = String(validating: record[fields[1]], as: UTF8.self) else { throw .malformedMeta(metaText()) }
        let payload = Array(record[(newline + 1)...])
        return ReplayMessage(type: type, id: id, timestamp: timestamp, latency: latency, payload: payload)
    }

    /// The first four fields of a meta line, and how many there were.
    private struct MetaFields {
        private var first: (Range<Int>, Range<Int>, Range<Int>, Range<Int>) = (0..<0, 0..<0, 0..<0, 0..<0)
        private(set) var count = 0

        mutating func append(_ field: Range<Int>) {
            switch count {
            case 0: first.0 = field
            case 1: first.1 = field
            case 2: first.2 = field
            case 3: first.3 = field
            default: break
            }
            count += 1
        }

        subscript(index: Int) -> Range<Int> {
            switch index {
            case 0: first.0
            case 1: first.1
            case 2: first.2
            default: first.3
            }
        }
    }

    /// A decimal Int64 with optional minus sign; nil on anything else or overflow.
    static func parseInt64(_ bytes: ArraySlice<UInt8>) -> Int64? {
        var digits = bytes
        var negative = false
        if digits.first == 0x2D {
            negative = true
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, digits.count <= 19 else { return nil }
        var value: Int64 = 0
        for byte in digits {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int64(byte - 0x30))
            if overflow1 || overflow2 { return nil }
            value = sum
        }
        return negative ? -value : value
    }
}

/// Why a `.gor` record could not be read.
public enum GorRecordError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The record has no newline, so no meta line.
    case missingMetaLine
    /// The meta line has fewer than three fields or non-numeric times.
    case malformedMeta(String)
    /// The payload type is not 1, 2 or 3.
    case unknownType(String)
    /// The record grew past the reader's limit without a separator.
    case recordTooLarge(Int)
    /// The file ended in the middle of a record.
    case truncated(Int)

    public var description: String {
        switch self {
        case .missingMetaLine: "record has no meta line"
        case .malformedMeta(let meta): "malformed meta line \"\(meta.prefix(80))\""
        case .unknownType(let type): "unknown payload type \"\(type.prefix(10))\""
        case .recordTooLarge(let size): "record larger than \(size) bytes without a separator"
        case .truncated(let size): "file ends inside a record (\(size) bytes after the last separator)"
        }
    }
}

/// Why a file could not be opened or read.
public struct FileIOError: Error, Sendable, CustomStringConvertible {
    /// The path involved.
    public var path: String
    /// What was being done.
    public var operation: String
    /// `errno` at the failure.
    public var code: Int32

    /// What went wrong when `errno` does not say it (e.g. corrupt gzip).
    public var detail: String?

    public init(path: String, operation: String, code: Int32, detail: String? = nil) {
        self.path = path
        self.operation = operation
        self.code = code
        self.detail = detail
    }

    public var description: String {
        "\(operation) \(path): \(detail ?? String(cString: strerror(code)))"
    }
}

/// Streams records out of a `.gor` file in fixed-size chunks, so memory stays
/// bounded by the largest record, never the file.
///
/// Bad records are skipped and reported through `skipped`; reading goes on.
public final class GorFileReader {
    /// Bytes read per `read(2)`.
    public static let chunkSize = 64 * 1024
    /// A record larger than this is skipped (GoReplay truncates at 5 MB by default).
    public let maxRecordSize: Int
    public let path: String

    private let descriptor: Int32
    /// Set for `.gz` files (by name or by their magic number).
    private var inflater: GzipInflater?
    private var buffer: [UInt8] = []
    /// Start of the unconsumed bytes in `buffer`.
    private var start = 0
    /// Where the next separator search begins (avoids rescanning).
    private var scanFrom = 0
    private var atEOF = false
    /// True after an oversized record: discard up to the next separator.
    private var discarding = false

    /// Records skipped so far, with the reason of each (only the count is kept
    /// for all; the first few reasons are kept for the report).
    public private(set) var skippedCount = 0
    public private(set) var skippedReasons: [GorRecordError] = []
    public private(set) var recordsRead = 0

    public init(path: String, maxRecordSize: Int = 64 * 1024 * 1024) throws(FileIOError) {
        self.path = path
        self.maxRecordSize = maxRecordSize
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError(path: path, operation: "open", code: errno) }
        self.descriptor = fd
        buffer.reserveCapacity(Self.chunkSize * 2)
        var magic: [UInt8] = [0, 0]
        let peeked = magic.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, 2, 0) }
        if Gzip.isGzipName(path) || (peeked == 2 && Gzip.hasGzipMagic(magic)) {
            inflater = try GzipInflater(path: path)
        }
    }

    deinit { close(descriptor) }

    /// For gzip files, decompresses the first chunk now, so a file that is
    /// not gzip is reported before replay starts rather than mid-stream.
    public func probe() throws(FileIOError) {
        guard inflater != nil, buffer.isEmpty, !atEOF else { return }
        try fill()
    }

    private func skip(_ reason: GorRecordError) {
        skippedCount += 1
        if skippedReasons.count < 10 { skippedReasons.append(reason) }
    }

    /// The next well-formed record, or nil at end of file.
    public func next() throws(FileIOError) -> ReplayMessage? {
        let separator = GorFormat.separator
        while true {
            if let found = findSeparator() {
                let record = buffer[start..<found]
                start = found + separator.count
                scanFrom = start
                if discarding {
                    discarding = false
                    continue
                }
                do throws(GorRecordError) {
                    let message = try GorFormat.decodeRecord(record)
                    recordsRead += 1
                    return message
                } catch {
                    skip(error)
                    continue
                }
            }
            if atEOF {
                let rest = buffer[start...]
                start = buffer.count
                scanFrom = start
                // A final separator missing only its newline still ends a record.
                let shortSeparator = separator.dropLast()
                if rest.count >= shortSeparator.count, rest.suffix(shortSeparator.count).elementsEqual(shortSeparator) {
                    if discarding { return nil }
                    do throws(GorRecordError) {
                        let message = try GorFormat.decodeRecord(rest.dropLast(shortSeparator.count))
                        recordsRead += 1
                        return message
                    } catch {
                        skip(error)
                        return nil
                    }
                }
                if !rest.allSatisfy({ $0 == 0x0A || $0 == 0x0D || $0 == 0x20 }) && !discarding {
                    skip(.truncated(rest.count))
                }
                return nil
            }
            if buffer.count - start > maxRecordSize {
                // Drop what we have (keeping a possible partial separator) and
                // discard up to the next separator.
                if !discarding { skip(.recordTooLarge(maxRecordSize)) }
                discarding = true
                let keep = separator.count - 1
                // Below `keep` bytes there is nothing to drop (a limit under 15 bytes crashed here; found by fuzzing).
                buffer.removeSubrange(0..<max(0, buffer.count - keep))
                start = 0
                scanFrom = 0
            }
            try fill()
        }
    }

    private func findSeparator() -> Int? {
        let separator = GorFormat.separator
        guard buffer.count - scanFrom >= separator.count else { return nil }
        let from = scanFrom
        let found: Int? = buffer.withUnsafeBytes { haystack in
            separator.withUnsafeBytes { needle in
                guard let base = haystack.baseAddress, let needleBase = needle.baseAddress else { return nil }
                // Look for the separator's second byte (0xF0, rare in HTTP
                // text), then check the whole separator around it.
                var position = from + 1
                let lastStart = haystack.count - needle.count
                while position <= lastStart + 1 {
                    guard let hit = memchr(base + position, 0xF0, lastStart + 2 - position) else { return nil }
                    let candidate = base.distance(to: UnsafeRawPointer(hit)) - 1
                    if memcmp(base + candidate, needleBase, needle.count) == 0 { return candidate }
                    position = candidate + 2
                }
                return nil
            }
        }
        if found == nil {
            // The separator may straddle the next chunk: rescan its possible start.
            scanFrom = max(start, buffer.count - separator.count + 1)
        }
        return found
    }

    private func fill() throws(FileIOError) {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            scanFrom -= start
            start = 0
        }
        if let inflater {
            let chunk = try inflater.readChunk { input throws(FileIOError) in try readCompressed(into: &input) }
            if chunk.isEmpty { atEOF = true }
            buffer.append(contentsOf: chunk)
            return
        }
        let oldCount = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: Self.chunkSize))
        var readCount = 0
        while true {
            readCount = buffer.withUnsafeMutableBytes { raw in
                read(descriptor, raw.baseAddress! + oldCount, Self.chunkSize)
            }
            if readCount < 0 && errno == EINTR { continue }
            break
        }
        if readCount < 0 {
            let code = errno
            buffer.removeSubrange(oldCount...)
            throw FileIOError(path: path, operation: "read", code: code)
        }
        buffer.removeSubrange((oldCount + readCount)...)
        if readCount == 0 { atEOF = true }
    }

    /// Appends one chunk of the (compressed) file to `input`; false at its end.
    private func readCompressed(into input: inout ByteBuffer) throws(FileIOError) -> Bool {
        var failure: Int32 = 0
        let count: Int = input.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.chunkSize) { raw in
            while true {
                let result = read(descriptor, raw.baseAddress!, min(raw.count, Self.chunkSize))
                if result < 0 && errno == EINTR { continue }
                if result < 0 { failure = errno }
                return max(0, result)
            }
        }
        if failure != 0 { throw FileIOError(path: path, operation: "read", code: failure) }
        return count > 0
    }
}
