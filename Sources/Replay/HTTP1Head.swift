import Foundation

// The one HTTP/1.x head parser: capture framing (Capture's `HTTPMessageFramer`),
// replayed responses (`HTTPResponseFramer`) and request rewrites (`HTTPRequest`)
// all read start lines, field lines and framing headers through the types here.

/// Which side of an exchange a message is.
public enum HTTP1Role: Sendable, Hashable { case request, response }

/// ASCII byte helpers for HTTP/1 field names and tokens.
public enum ASCII {
    public static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }

    /// Compares two byte sequences, ASCII letters without regard to case.
    public static func equalsIgnoringCase<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { lowercased($0) == lowercased($1) }
    }

    /// `bytes` equals the lower-case literal `lowercase`, ignoring the case of `bytes`.
    public static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for offset in 0..<bytes.count where lowercased(bytes[offset]) != expected[offset] { return false }
        return true
    }

    /// `bytes` begins with `literal`, byte for byte (a method and its space, say).
    public static func hasPrefix(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard bytes.count >= count, let base = bytes.baseAddress else { return false }
        return memcmp(base, literal.utf8Start, count) == 0
    }

    /// RFC 9110 tchar.
    public static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5a, 0x61...0x7a: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
    static func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
}

/// Recognises HTTP/1.x start lines, also from a prefix (to reject garbage
/// early and to resynchronise on a stream first seen mid-way).
public enum HTTP1StartLine {
    public enum Verdict: Sendable, Equatable { case valid, needMore, invalid }

    /// Longest start line accepted (long URLs included).
    public static let maxLength = 16 * 1024
    /// Longest method accepted.
    public static let maxMethodLength = 32

    /// Checks `bytes` up to its first LF (or its end, giving `.needMore` when
    /// the prefix is consistent with a start line).
    public static func check<Bytes: Collection>(_ bytes: Bytes, role: HTTP1Role) -> Verdict
    where Bytes.Element == UInt8 {
        switch role {
        case .request: return checkRequest(bytes)
        case .response: return checkResponse(bytes)
        }
    }

    /// `METHOD SP target SP HTTP/1.d [CR] LF`, any token as the method.
    private static func checkRequest<Bytes: Collection>(_ bytes: Bytes) -> Verdict where Bytes.Element == UInt8 {
        var part = 0 // 0 method, 1 target, 2 version
        var partLength = 0
        var seen = 0
        var sawCR = false
        for byte in bytes {
            seen += 1
            if seen > maxLength { return .invalid }
            switch part {
            case 0:
                if byte == 0x20 {
                    guard partLength > 0 else { return .invalid }
                    part = 1
                    partLength = 0
                } else if ASCII.isTokenByte(byte), partLength < maxMethodLength {
                    partLength += 1
                } else {
                    return .invalid
                }
            case 1:
                if byte == 0x20 {
                    guard partLength > 0 else { return .invalid }
                    part = 2
                    partLength = 0
                } else if byte > 0x20 && byte != 0x7f {
                    partLength += 1
                } else {
                    return .invalid
                }
            default:
                if byte == 0x0a { return partLength == 8 ? .valid : .invalid }
                if sawCR { return .invalid } // CR only right before LF
                if byte == 0x0d, partLength == 8 {
                    sawCR = true
                    continue
                }
                guard versionByteFits(byte, at: partLength) else { return .invalid }
                partLength += 1
            }
        }
        return .needMore
    }

    /// `HTTP/1.d SP ddd [SP reason] [CR] LF`.
    private static func checkResponse<Bytes: Collection>(_ bytes: Bytes) -> Verdict where Bytes.Element == UInt8 {
        var index = 0
        for byte in bytes {
            if index > maxLength { return .invalid }
            switch index {
            case 0..<8:
                if !versionByteFits(byte, at: index) { return .invalid }
            case 8:
                if byte != 0x20 { return .invalid }
            case 9..<12:
                if !ASCII.isDigit(byte) { return .invalid }
            case 12:
                if byte == 0x0a { return .valid }
                if byte != 0x20 && byte != 0x0d { return .invalid }
            default:
                if byte == 0x0a { return .valid }
            }
            index += 1
        }
        return .needMore
    }

    /// Byte `offset` of "HTTP/1.d".
    private static func versionByteFits(_ byte: UInt8, at offset: Int) -> Bool {
        switch offset {
        case 0: byte == UInt8(ascii: "H")
        case 1, 2: byte == UInt8(ascii: "T")
        case 3: byte == UInt8(ascii: "P")
        case 4: byte == UInt8(ascii: "/")
        case 5: byte == UInt8(ascii: "1")
        case 6: byte == UInt8(ascii: ".")
        case 7: ASCII.isDigit(byte)
        default: false
        }
    }
}

/// Finds the end of a header block in a byte stream fed in runs of any size:
/// lines end with LF (a CR before it is part of the terminator) and the block
/// ends with the first empty line after the start line.
public struct HTTP1HeadScanner: Sendable {
    /// Bytes of the head scanned so far.
    public private(set) var scanned = 0
    /// Length of the start line with its terminator, once its LF was seen.
    public private(set) var startLineLength: Int?
    /// Bytes on the current line so far (its CR included).
    private var lineLength = 0
    private var lineEndsWithCR = false

    public init() {}

    public mutating func reset() { self = HTTP1HeadScanner() }

    /// Scans `bytes[start...]`; returns where scanning stopped and whether
    /// that is just past the block's final LF.
    public mutating func scan(_ bytes: UnsafeRawBufferPointer, from start: Int) -> (next: Int, complete: Bool) {
        var index = start
        let count = bytes.count
        guard let base = bytes.baseAddress else { return (start, false) }
        while index < count {
            guard let found = memchr(base + index, 0x0a, count - index) else {
                lineLength += count - index
                lineEndsWithCR = bytes[count - 1] == 0x0d
                scanned += count - index
                return (count, false)
            }
            let lf = base.distance(to: UnsafeRawPointer(found))
            let added = lf - index
            if added > 0 { lineEndsWithCR = bytes[lf - 1] == 0x0d }
            lineLength += added
            scanned += added + 1
            index = lf + 1
            let empty = lineLength == 0 || (lineLength == 1 && lineEndsWithCR)
            lineLength = 0
            lineEndsWithCR = false
            if startLineLength == nil {
                startLineLength = scanned
            } else if empty {
                return (index, true)
            }
        }
        return (index, false)
    }
}

/// Why a header block cannot be framed. Each case names the line at fault
/// (1 is the start line).
public enum HTTP1HeadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not an HTTP/1.x request line or status line.
    case malformedStartLine(String)
    /// A field line without a colon, with an empty name or whitespace before the colon.
    case malformedField(line: Int, text: String)
    /// A line starting with whitespace (obsolete line folding, RFC 9112 §5.2).
    case obsoleteLineFolding(line: Int)
    /// A Content-Length that is not a number, or two that differ.
    case invalidContentLength(line: Int, text: String)
    /// A request whose final transfer coding is not chunked (RFC 9112 §6.1).
    case unframeableTransferEncoding(line: Int)
    /// The block does not end with an empty line.
    case incomplete
    /// The head is larger than the limit.
    case tooLarge(limit: Int)

    /// True when the head is HTTP but its body cannot be delimited.
    public var isFramingError: Bool {
        switch self {
        case .invalidContentLength, .unframeableTransferEncoding, .obsoleteLineFolding: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .malformedStartLine(let text): "malformed start line \"\(text.prefix(60))\""
        case .malformedField(let line, let text): "line \(line): malformed field \"\(text.prefix(60))\""
        case .obsoleteLineFolding(let line): "line \(line): obsolete line folding (a line starting with whitespace)"
        case .invalidContentLength(let line, let text):
            "line \(line): invalid or conflicting Content-Length \"\(text.prefix(40))\""
        case .unframeableTransferEncoding(let line): "line \(line): Transfer-Encoding whose final coding is not chunked"
        case .incomplete: "header block without its closing empty line"
        case .tooLarge(let limit): "head larger than \(limit) bytes"
        }
    }
}

/// How a message's body is delimited (RFC 9112 §6.3).
public enum HTTP1BodyFraming: Sendable, Equatable {
    case none
    case fixed(Int)
    case chunked
    /// A response whose body runs until the connection closes.
    case untilClose
}

/// One field line of a head, as offsets into the head's bytes.
public struct HTTP1FieldLine: Sendable, Equatable {
    /// The line with its terminator (CRLF or LF).
    public var line: Range<Int>
    /// The field name (never empty for a well-formed field).
    public var name: Range<Int>
    /// The value without surrounding whitespace.
    public var value: Range<Int>
    /// 1-based line number in the head (1 is the start line).
    public var number: Int
}

/// The framing-relevant parts of a complete header block, parsed once.
public struct HTTP1Head: Sendable, Equatable {
    public var role: HTTP1Role
    /// Request method (requests only).
    public var method: String?
    /// Request target (requests only).
    public var target: Range<Int>?
    /// Status code (responses only).
    public var status: Int?
    /// Minor version: 0 for HTTP/1.0.
    public var minorVersion: Int
    /// Length of the start line with its terminator.
    public var startLineLength: Int
    /// Length of the whole block, its closing empty line included.
    public var length: Int
    public var contentLength: Int?
    /// A Transfer-Encoding field is present.
    public var hasTransferEncoding = false
    /// The final transfer coding is chunked.
    public var chunked = false
    /// Connection: close was sent.
    public var connectionClose = false
    /// Connection: keep-alive was sent.
    public var connectionKeepAlive = false
    /// The `Expect: 100-continue` line with its terminator.
    public var expectContinueLine: Range<Int>?
    /// Line number of the final Transfer-Encoding field (for errors).
    private var transferEncodingLine = 0

    /// Parses the header block at the start of `bytes` (anything after the
    /// closing empty line is ignored).
    public init(parsing bytes: UnsafeRawBufferPointer, role: HTTP1Role) throws(HTTP1HeadError) {
        self.role = role
        guard let firstLF = Self.lineFeed(in: bytes, from: 0) else { throw .incomplete }
        let startLine = UnsafeRawBufferPointer(rebasing: bytes[0...firstLF])
        guard HTTP1StartLine.check(startLine, role: role) == .valid else {
            throw .malformedStartLine(String(decoding: startLine.prefix(80), as: UTF8.self))
        }
        startLineLength = firstLF + 1
        switch role {
        case .request:
            let methodEnd = startLine.firstIndex(of: 0x20)! // the check found it
            let targetEnd = startLine[(methodEnd + 1)...].firstIndex(of: 0x20)!
            method = String(decoding: startLine[..<methodEnd], as: UTF8.self)
            target = (methodEnd + 1)..<targetEnd
            minorVersion = Int(startLine[targetEnd + 8] - 0x30)
        case .response:
            minorVersion = Int(bytes[7] - 0x30)
            status = Int(bytes[9] - 0x30) * 100 + Int(bytes[10] - 0x30) * 10 + Int(bytes[11] - 0x30)
        }
        length = 0
        var end = 0
        try Self.forEachField(in: bytes, from: startLineLength, end: &end) { (field) throws(HTTP1HeadError) in
            try inspect(field, in: bytes)
        }
        length = end
    }

    public init(parsing bytes: [UInt8], role: HTTP1Role) throws(HTTP1HeadError) {
        let result: Result<HTTP1Head, HTTP1HeadError> = bytes.withUnsafeBytes { raw in
            Result { () throws(HTTP1HeadError) in try HTTP1Head(parsing: raw, role: role) }
        }
        self = try result.get()
    }

    /// HTTP/1.1 without `Connection: close`, or HTTP/1.0 with keep-alive.
    public var isPersistent: Bool {
        minorVersion == 0 ? connectionKeepAlive && !connectionClose : !connectionClose
    }

    /// True for 1xx responses other than 101: another response follows.
    public var isInterim: Bool {
        guard let status else { return false }
        return status >= 100 && status < 200 && status != 101
    }

    /// How this message's body ends. A response needs the method of its
    /// request (HEAD and CONNECT change it; nil when unknown).
    public func bodyFraming(requestMethod: String? = nil) throws(HTTP1HeadError) -> HTTP1BodyFraming {
        switch role {
        case .request:
            if chunked { return .chunked }
            if hasTransferEncoding { throw .unframeableTransferEncoding(line: transferEncodingLine) }
            return (contentLength ?? 0) == 0 ? .none : .fixed(contentLength!)
        case .response:
            let status = status ?? 0
            if status < 200 || status == 204 || status == 304 { return .none }
            if requestMethod == "HEAD" { return .none }
            if requestMethod == "CONNECT" && status < 300 { return .none }
            if chunked { return .chunked }
            if hasTransferEncoding { return .untilClose }
            if let contentLength { return contentLength == 0 ? .none : .fixed(contentLength) }
            return .untilClose
        }
    }

    private mutating func inspect(_ field: HTTP1FieldLine, in bytes: UnsafeRawBufferPointer) throws(HTTP1HeadError) {
        let name = UnsafeRawBufferPointer(rebasing: bytes[field.name])
        let value = UnsafeRawBufferPointer(rebasing: bytes[field.value])
        switch name.count {
        case 14 where ASCII.equalsIgnoringCase(name, "content-length"):
            guard let length = Self.decimal(value) else {
                throw .invalidContentLength(line: field.number, text: String(decoding: value, as: UTF8.self))
            }
            if let contentLength, contentLength != length {
                throw .invalidContentLength(line: field.number, text: String(decoding: value, as: UTF8.self))
            }
            contentLength = length
        case 17 where ASCII.equalsIgnoringCase(name, "transfer-encoding"):
            hasTransferEncoding = true
            transferEncodingLine = field.number
            // The codings of every Transfer-Encoding line form one list: its last entry decides.
            var last: UnsafeRawBufferPointer?
            Self.forEachListItem(in: value) { item, untrimmedEmpty in if !untrimmedEmpty { last = item } }
            if let last { chunked = ASCII.equalsIgnoringCase(last, "chunked") }
        case 10 where ASCII.equalsIgnoringCase(name, "connection"):
            Self.forEachListItem(in: value) { option, _ in
                if ASCII.equalsIgnoringCase(option, "close") { connectionClose = true }
                if ASCII.equalsIgnoringCase(option, "keep-alive") { connectionKeepAlive = true }
            }
        case 6 where ASCII.equalsIgnoringCase(name, "expect"):
            if ASCII.equalsIgnoringCase(value, "100-continue".utf8) { expectContinueLine = field.line }
        default:
            break
        }
    }

    /// Calls `body` for each field line after `start` up to the empty line
    /// ending the block; `end` is set just past that empty line. Field lines
    /// must be `name: value` with a token name; obsolete folding is refused.
    public static func forEachField(
        in bytes: UnsafeRawBufferPointer, from start: Int, end: inout Int,
        _ body: (HTTP1FieldLine) throws(HTTP1HeadError) -> Void
    ) throws(HTTP1HeadError) {
        try forEachLine(in: bytes, from: start, end: &end) { (field, shape) throws(HTTP1HeadError) in
            switch shape {
            case .continuation: throw .obsoleteLineFolding(line: field.number)
            case .noColon: throw .malformedField(line: field.number, text: text(of: field.line, in: bytes))
            case .field:
                let name = UnsafeRawBufferPointer(rebasing: bytes[field.name])
                guard !name.isEmpty, name.allSatisfy(ASCII.isTokenByte) else {
                    throw .malformedField(line: field.number, text: text(of: field.line, in: bytes))
                }
                try body(field)
            }
        }
    }

    /// What a line of a header block looks like, before any policy.
    public enum LineShape: Sendable { case field, continuation, noColon }

    /// Walks the lines of a header block without judging them: `name` runs
    /// to the first colon (empty for a line without one, whose `value` is
    /// then the whole line). `HTTPRequest` keeps such lines as they are; the
    /// strict `forEachField` refuses them.
    public static func forEachLine(
        in bytes: UnsafeRawBufferPointer, from start: Int, end: inout Int,
        _ body: (HTTP1FieldLine, LineShape) throws(HTTP1HeadError) -> Void
    ) throws(HTTP1HeadError) {
        var lineStart = start
        var number = 2
        while true {
            guard let lf = lineFeed(in: bytes, from: lineStart) else { throw .incomplete }
            var lineEnd = lf
            if lineEnd > lineStart && bytes[lineEnd - 1] == 0x0d { lineEnd -= 1 }
            if lineEnd == lineStart {
                end = lf + 1
                return
            }
            let colon = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<lineEnd]).firstIndex(of: 0x3a).map {
                $0 + lineStart
            }
            var valueStart = colon.map { $0 + 1 } ?? lineStart
            var valueEnd = lineEnd
            while valueStart < valueEnd && ASCII.isWhitespace(bytes[valueStart]) { valueStart += 1 }
            while valueEnd > valueStart && ASCII.isWhitespace(bytes[valueEnd - 1]) { valueEnd -= 1 }
            let shape: LineShape =
                ASCII.isWhitespace(bytes[lineStart]) ? .continuation : colon == nil ? .noColon : .field
            let field = HTTP1FieldLine(
                line: lineStart..<(lf + 1), name: lineStart..<(colon ?? lineStart), value: valueStart..<valueEnd,
                number: number)
            try body(field, shape)
            lineStart = lf + 1
            number += 1
        }
    }

    private static func text(of line: Range<Int>, in bytes: UnsafeRawBufferPointer) -> String {
        var end = line.upperBound
        while end > line.lowerBound && (bytes[end - 1] == 0x0a || bytes[end - 1] == 0x0d) { end -= 1 }
        return String(
            decoding: UnsafeRawBufferPointer(rebasing: bytes[line.lowerBound..<end]).prefix(80), as: UTF8.self)
    }

    static func lineFeed(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard start < bytes.count, let base = bytes.baseAddress,
            let found = memchr(base + start, 0x0a, bytes.count - start)
        else { return nil }
        return base.distance(to: UnsafeRawPointer(found))
    }

    /// A non-negative decimal of at most 18 digits.
    static func decimal<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value = 0
        for byte in bytes {
            guard ASCII.isDigit(byte) else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        return value
    }

    /// Calls `body` with each comma-separated item of `value`, trimmed (empty
    /// items included, flagged by whether they were empty before trimming); no
    /// arrays, as this runs for every replayed response.
    static func forEachListItem(in value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer, Bool) -> Void) {
        var start = 0
        while start <= value.count {
            var end = start
            while end < value.count && value[end] != 0x2c { end += 1 }
            var low = start
            var high = end
            while low < high && ASCII.isWhitespace(value[low]) { low += 1 }
            while high > low && ASCII.isWhitespace(value[high - 1]) { high -= 1 }
            body(UnsafeRawBufferPointer(rebasing: value[low..<high]), end == start)
            start = end + 1
        }
    }
}
