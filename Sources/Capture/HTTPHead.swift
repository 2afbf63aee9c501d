/// Recognises HTTP/1.x start lines, also from a prefix (to reject garbage
/// early and to resynchronise on a stream first seen mid-way).
enum HTTPStartLine {
    enum Verdict: Equatable { case valid, needMore, invalid }

    /// Longest start line accepted (long URLs included).
    static let maxLength = 16 * 1024

    /// Checks `bytes` up to its first LF (or its end, giving `.needMore` when
    /// the prefix is consistent with a start line).
    static func check<Bytes: Collection>(_ bytes: Bytes, role: HTTPMessageFramer.Role) -> Verdict where Bytes.Element == UInt8 {
        switch role {
        case .request: return checkRequest(bytes)
        case .response: return checkResponse(bytes)
        }
    }

    /// `METHOD SP target SP HTTP/d.d CRLF`, any token as the method.
    private static func checkRequest<Bytes: Collection>(_ bytes: Bytes) -> Verdict where Bytes.Element == UInt8 {
        var part = 0  // 0 method, 1 target, 2 version
        var partLength = 0
        var version: [UInt8] = []
        var seen = 0
        for byte in bytes {
            seen += 1
            if seen > maxLength { return .invalid }
            switch part {
            case 0:
                if byte == 0x20 {
                    guard partLength > 0 else { return .invalid }
                    part = 1; partLength = 0
                } else if isTokenByte(byte), partLength < 32 {
                    partLength += 1
                } else {
                    return .invalid
                }
            case 1:
                if byte == 0x20 {
                    guard partLength > 0 else { return .invalid }
                    part = 2; partLength = 0
                } else if byte > 0x20 && byte != 0x7f {
                    partLength += 1
                } else {
                    return .invalid
                }
            default:
                if byte == 0x0a {
                    if version.last == 0x0d { version.removeLast() }
                    return isVersion(version, complete: true) ? .valid : .invalid
                }
                version.append(byte)
                if version.count > 9 || !isVersion(version, complete: false) { return .invalid }
            }
        }
        return .needMore
    }

    /// `HTTP/d.d SP ddd [SP reason] CRLF`.
    private static func checkResponse<Bytes: Collection>(_ bytes: Bytes) -> Verdict where Bytes.Element == UInt8 {
        var index = 0
        for byte in bytes {
            if index > maxLength { return .invalid }
            switch index {
            case 0..<8:
                let prefix = Array("HTTP/1.".utf8)
                if index < 7 {
                    if byte != prefix[index] { return .invalid }
                } else if !(0x30...0x39).contains(byte) {
                    return .invalid
                }
            case 8:
                if byte != 0x20 { return .invalid }
            case 9..<12:
                if !(0x30...0x39).contains(byte) { return .invalid }
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

    /// "HTTP/1.1" (or 1.0) with an optional trailing CR removed.
    private static func isVersion(_ bytes: [UInt8], complete: Bool) -> Bool {
        let expected = Array("HTTP/1.".utf8)
        for (offset, byte) in bytes.enumerated() {
            if offset < expected.count {
                if byte != expected[offset] { return false }
            } else if offset == expected.count {
                if !(0x30...0x39).contains(byte) { return false }
            } else if !(offset == expected.count + 1 && byte == 0x0d && !complete) {
                return false
            }
        }
        return !complete || bytes.count == expected.count + 1
    }

    /// RFC 9110 tchar.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5a, 0x61...0x7a: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }
}

/// The framing-relevant parts of a complete header block.
struct HTTPHead {
    var method: String?
    var status: Int?
    var startLineLength: Int
    var contentLength: Int?
    /// Several different or non-numeric Content-Length values.
    var contentLengthInvalid = false
    /// A Transfer-Encoding header is present.
    var transferEncoding = false
    /// Its final coding is chunked.
    var chunked = false
    var expectContinueLine: Range<Int>?

    /// `bytes` is the whole header block ending in CRLFCRLF.
    init?(parsing bytes: [UInt8], role: HTTPMessageFramer.Role) {
        guard let firstLF = bytes.firstIndex(of: 0x0a) else { return nil }
        startLineLength = firstLF + 1
        guard HTTPStartLine.check(bytes[0...firstLF], role: role) == .valid else { return nil }
        switch role {
        case .request:
            guard let space = bytes.firstIndex(of: 0x20) else { return nil }
            method = String(decoding: bytes[0..<space], as: UTF8.self)
        case .response:
            status = Int(bytes[9] - 0x30) * 100 + Int(bytes[10] - 0x30) * 10 + Int(bytes[11] - 0x30)
        }
        var lineStart = firstLF + 1
        while lineStart < bytes.count {
            guard let lf = bytes[lineStart...].firstIndex(of: 0x0a) else { break }
            var lineEnd = lf
            if lineEnd > lineStart && bytes[lineEnd - 1] == 0x0d { lineEnd -= 1 }
            if lineEnd == lineStart { break }  // the empty line ending the block
            inspect(bytes, lineStart..<lineEnd, fullLine: lineStart..<(lf + 1))
            lineStart = lf + 1
        }
    }

    private mutating func inspect(_ bytes: [UInt8], _ line: Range<Int>, fullLine: Range<Int>) {
        guard let colon = bytes[line].firstIndex(of: UInt8(ascii: ":")) else { return }
        let name = bytes[line.lowerBound..<colon]
        var valueStart = colon + 1
        var valueEnd = line.upperBound
        while valueStart < valueEnd, bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09 { valueStart += 1 }
        while valueEnd > valueStart, bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09 { valueEnd -= 1 }
        let value = bytes[valueStart..<valueEnd]
        if Self.equalsIgnoringCase(name, "content-length") {
            var length = 0
            guard !value.isEmpty, value.count <= 18 else { contentLengthInvalid = true; return }
            for byte in value {
                guard (0x30...0x39).contains(byte) else { contentLengthInvalid = true; return }
                length = length * 10 + Int(byte - 0x30)
            }
            if let previous = contentLength, previous != length { contentLengthInvalid = true }
            contentLength = length
        } else if Self.equalsIgnoringCase(name, "transfer-encoding") {
            transferEncoding = true
            let codings = String(decoding: value, as: UTF8.self).split(separator: ",")
            let last = codings.last.map { $0.trimmingSpaces.lowercased() }
            chunked = last == "chunked"
        } else if Self.equalsIgnoringCase(name, "expect"),
                  Self.equalsIgnoringCase(value, "100-continue") {
            expectContinueLine = fullLine
        }
    }

    static func equalsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        for (byte, want) in zip(bytes, expected) {
            let lower = (0x41...0x5a).contains(byte) ? byte | 0x20 : byte
            if lower != want { return false }
        }
        return true
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result = result.dropFirst() }
        while let last = result.last, last == " " || last == "\t" { result = result.dropLast() }
        return result
    }
}
