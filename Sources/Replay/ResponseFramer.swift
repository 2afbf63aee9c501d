/// Finds where one HTTP/1.x response ends in a byte stream, so a pooled
/// connection can be reused: Content-Length, chunked, bodiless (HEAD, 1xx,
/// 204, 304) and close-delimited bodies. Interim 1xx responses are skipped.
/// Heads and chunked bodies are read by the shared core (`HTTP1Head`,
/// `ChunkedBodyDecoder`), the same one capture frames with.
public struct HTTPResponseFramer: Sendable {
    /// Why the bytes are not an HTTP response.
    public enum FramingError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The status line or a header is malformed, or the body cannot be delimited.
        case malformedHead(HTTP1HeadError)
        /// The chunked body is malformed.
        case malformedChunk(ChunkedBodyDecoder.DecodingError)
        /// The head is unreasonably long.
        case headTooLarge

        public var description: String {
            switch self {
            case .malformedHead(let error): "malformed response head: \(error)"
            case .malformedChunk(let error): "\(error)"
            case .headTooLarge: "response head larger than \(HTTPResponseFramer.maxHeadBytes / 1024) KiB"
            }
        }
    }

    private enum State: Sendable {
        case head
        case fixedBody(remaining: Int)
        case chunked
        case untilClose
        case complete
    }

    /// Largest response head accepted.
    public static let maxHeadBytes = 64 * 1024

    private var state = State.head
    private var scanner = HTTP1HeadScanner()
    private var chunks = ChunkedBodyDecoder()
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
        scanner.reset()
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
                if head.isEmpty && scanner.scanned == 0 && (bytes[index] == 0x0d || bytes[index] == 0x0a) {
                    index += 1 // stray blank line before a response
                    continue
                }
                let (next, complete) = scanner.scan(bytes, from: index)
                let run = UnsafeRawBufferPointer(rebasing: bytes[index..<next])
                index = next
                if scanner.scanned > Self.maxHeadBytes { throw .headTooLarge }
                if complete && head.isEmpty {
                    try startBody(headBytes: run) // the whole head in one read: no copy
                } else {
                    head.append(contentsOf: run)
                    if complete {
                        var block: [UInt8] = []
                        swap(&block, &head) // parse it without holding `self.head` borrowed
                        let result: Result<Void, FramingError> = block.withUnsafeBytes { whole in
                            Result { () throws(FramingError) in try startBody(headBytes: whole) }
                        }
                        block.removeAll(keepingCapacity: true)
                        head = block
                        try result.get()
                    }
                }
            case .fixedBody(let remaining):
                let take = min(remaining, count - index)
                index += take
                state = remaining == take ? .complete : .fixedBody(remaining: remaining - take)
            case .chunked:
                do {
                    try chunks.consume(bytes, at: &index)
                } catch {
                    throw .malformedChunk(error)
                }
                if chunks.isComplete { state = .complete }
            case .untilClose:
                return false
            }
        }
        return isComplete
    }

    private mutating func startBody(headBytes: UnsafeRawBufferPointer) throws(FramingError) {
        let parsed: HTTP1Head
        let framing: HTTP1BodyFraming
        do {
            parsed = try HTTP1Head(parsing: headBytes, role: .response)
            framing = try parsed.bodyFraming(requestMethod: requestWasHead ? "HEAD" : nil)
        } catch {
            throw .malformedHead(error)
        }
        scanner.reset()
        if parsed.isInterim { return } // the real response follows
        statusCode = parsed.status ?? 0
        closesConnection = !parsed.isPersistent
        switch framing {
        case .none: state = .complete
        case .fixed(let length): state = .fixedBody(remaining: length)
        case .chunked:
            chunks = ChunkedBodyDecoder()
            state = .chunked
        case .untilClose:
            closesConnection = true
            state = .untilClose
        }
    }
}
