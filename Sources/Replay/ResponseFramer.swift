/// Finds where one HTTP/1.x response ends in a byte stream, so a pooled
/// connection can be reused: Content-Length, chunked, bodiless (HEAD, 1xx,
/// 204, 304) and close-delimited bodies. Interim 1xx responses are skipped.
public struct HTTPResponseFramer: Sendable {
    /// Why the bytes are not an HTTP response.
    public enum FramingError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The status line or a header is malformed.
        case malformedHead(String)
        /// A chunk size line is not hexadecimal.
        case malformedChunk
        /// The head is unreasonably long.
        case headTooLarge

        public var description: String {
            switch self {
            case .malformedHead(let line): "malformed response head \"\(line.prefix(60))\""
            case .malformedChunk: "malformed chunk size"
            case .headTooLarge: "response head larger than 64 KiB"
            }
        }
    }

    private enum State: Sendable {
        case head
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd(remaining: Int)
        case trailers
        case untilClose
        case complete
    }

    private var state = State.head
    private var line: [UInt8] = []
    private var head: [UInt8] = []
    private var requestWasHead = false
    /// Keep the response's bytes (for `--output-http-track-response`).
    public let keepsRaw: Bool
    /// At most this many bytes are kept; the rest is framed but discarded, as GoReplay's
    /// `--output-http-response-buffer` does, so one huge response cannot take the memory.
    public let rawLimit: Int
    public private(set) var raw: [UInt8] = []
    /// Status of the final (non-1xx) response.
    public private(set) var statusCode = 0
    /// The server will close the connection after this response.
    public private(set) var closesConnection = false

    public init(keepsRaw: Bool, rawLimit: Int = Int.max) {
        self.keepsRaw = keepsRaw
        self.rawLimit = max(0, rawLimit)
    }

    /// Starts on a new response to a request with the given method.
    public mutating func reset(requestMethodIsHead: Bool) {
        state = .head
        line.removeAll(keepingCapacity: true)
        head.removeAll(keepingCapacity: true)
        raw.removeAll(keepingCapacity: true)
        requestWasHead = requestMethodIsHead
        statusCode = 0
        closesConnection = false
    }

    public var isComplete: Bool {
        if case .complete = state { return true }
        return false
    }

    /// True when the body runs to the end of the connection.
    public var isCloseDelimited: Bool {
        if case .untilClose = state { return true }
        return false
    }

    /// Consumes bytes; returns true once the response is complete (later
    /// bytes in `bytes` are ignored).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(FramingError) -> Bool {
        if keepsRaw, raw.count < rawLimit { raw.append(contentsOf: bytes.prefix(rawLimit - raw.count)) }
        var index = 0
        let count = bytes.count
        while index < count {
            switch state {
            case .complete:
                return true
            case .head:
                // Take one line at a time; the head ends with an empty line.
                var end = index
                while end < count && bytes[end] != 0x0A { end += 1 }
                let lineEnd = min(end + 1, count)
                head.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<lineEnd]))
                index = lineEnd
                if head.count > 65_536 { throw .headTooLarge }
                if end < count {
                    let n = head.count
                    if (n >= 2 && head[n - 2] == 0x0A) || (n >= 3 && head[n - 2] == 0x0D && head[n - 3] == 0x0A) {
                        try parseHead()
                    } else if n == 1 || (n == 2 && head[0] == 0x0D) {
                        head.removeAll(keepingCapacity: true)  // stray blank line before a response
                    }
                }
            case .fixedBody(let remaining):
                let take = min(remaining, count - index)
                index += take
                state = remaining - take == 0 ? .complete : .fixedBody(remaining: remaining - take)
            case .chunkSize, .trailers:
                let byte = bytes[index]
                index += 1
                if byte != 0x0A {
                    line.append(byte)
                    if line.count > 8192 { throw .malformedChunk }
                    continue
                }
                if line.last == 0x0D { line.removeLast() }
                if case .trailers = state {
                    if line.isEmpty { state = .complete }
                    line.removeAll(keepingCapacity: true)
                    continue
                }
                let hexDigits = line.prefix { $0 != 0x3B && $0 != 0x20 && $0 != 0x09 }
                guard let size = Int(String(decoding: hexDigits, as: UTF8.self), radix: 16), size >= 0 else {
                    throw .malformedChunk
                }
                line.removeAll(keepingCapacity: true)
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let take = min(remaining, count - index)
                index += take
                state = remaining - take == 0 ? .chunkDataEnd(remaining: 2) : .chunkData(remaining: remaining - take)
            case .chunkDataEnd(let remaining):
                // CRLF after the data (a bare LF is tolerated).
                let byte = bytes[index]
                index += 1
                if byte == 0x0A || remaining == 1 {
                    state = .chunkSize
                } else {
                    state = .chunkDataEnd(remaining: remaining - 1)
                }
            case .untilClose:
                return false
            }
        }
        return isComplete
    }

    private mutating func parseHead() throws(FramingError) {
        // Work on bytes: this runs once per replayed response.
        var lines: [Range<Int>] = []
        var start = 0
        for position in head.indices where head[position] == 0x0A {
            var end = position
            if end > start && head[end - 1] == 0x0D { end -= 1 }
            if end > start { lines.append(start..<end) }
            start = position + 1
        }
        guard let statusLine = lines.first else {
            head.removeAll(keepingCapacity: true)
            return
        }
        // "HTTP/1.x NNN ..."
        let line = head[statusLine]
        guard line.count >= 12, line.starts(with: "HTTP/1.".utf8), line[line.startIndex + 8] == 0x20 else {
            throw .malformedHead(String(decoding: line, as: UTF8.self))
        }
        var status = 0
        for offset in 9..<12 {
            let digit = line[line.startIndex + offset]
            guard digit >= 0x30 && digit <= 0x39 else { throw .malformedHead(String(decoding: line, as: UTF8.self)) }
            status = status * 10 + Int(digit - 0x30)
        }
        let isHTTP10 = line[line.startIndex + 7] == 0x30
        if status >= 100 && status < 200 && status != 101 {
            head.removeAll(keepingCapacity: true)
            return  // interim response; the real one follows
        }
        statusCode = status
        var contentLength: Int?
        var chunked = false
        var connectionClose = isHTTP10
        for range in lines.dropFirst() {
            let field = head[range]
            guard let colon = field.firstIndex(of: 0x3A) else { continue }
            let name = field[field.startIndex..<colon]
            var value = field[(colon + 1)...]
            while let first = value.first, first == 0x20 || first == 0x09 { value = value.dropFirst() }
            while let last = value.last, last == 0x20 || last == 0x09 { value = value.dropLast() }
            if Self.equalsLowercase(name, "content-length") {
                var length = 0
                guard !value.isEmpty else { throw .malformedHead(String(decoding: field, as: UTF8.self)) }
                for digit in value {
                    guard digit >= 0x30 && digit <= 0x39, length < Int.max / 10 - 10 else {
                        throw .malformedHead(String(decoding: field, as: UTF8.self))
                    }
                    length = length * 10 + Int(digit - 0x30)
                }
                contentLength = length
            } else if Self.equalsLowercase(name, "transfer-encoding") {
                chunked = Self.containsLowercase(value, "chunked")
            } else if Self.equalsLowercase(name, "connection") {
                if Self.containsLowercase(value, "close") { connectionClose = true }
                if Self.containsLowercase(value, "keep-alive") { connectionClose = false }
            }
        }
        head.removeAll(keepingCapacity: true)
        closesConnection = connectionClose
        if requestWasHead || status == 204 || status == 304 || status == 101 {
            state = .complete
        } else if chunked {
            state = .chunkSize
        } else if let contentLength {
            state = contentLength == 0 ? .complete : .fixedBody(remaining: contentLength)
        } else {
            closesConnection = true
            state = .untilClose
        }
    }

    private static func equalsLowercase(_ bytes: ArraySlice<UInt8>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let pointer = lowercase.utf8Start
        var offset = 0
        for byte in bytes {
            let folded = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
            if folded != pointer[offset] { return false }
            offset += 1
        }
        return true
    }

    private static func containsLowercase(_ bytes: ArraySlice<UInt8>, _ word: String) -> Bool {
        let folded = bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
        let needle = Array(word.utf8)
        guard folded.count >= needle.count else { return false }
        for start in 0...(folded.count - needle.count) where folded[start..<(start + needle.count)].elementsEqual(needle) {
            return true
        }
        return false
    }
}
