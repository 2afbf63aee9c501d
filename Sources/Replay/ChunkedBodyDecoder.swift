/// Finds where a chunked body ends (RFC 9112 §7.1) in bytes fed in runs of
/// any size: chunk sizes with extensions, data, and the trailer section.
/// It only delimits; the bytes stay with the caller, which keeps or drops them.
public struct ChunkedBodyDecoder: Sendable {
    /// Why a chunked body cannot be delimited.
    public enum DecodingError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The size line does not start with a hexadecimal number, or it is too large.
        case malformedChunkSize
        /// A size line (extensions included) longer than the limit.
        case chunkSizeLineTooLong
        /// Chunk data not followed by CRLF.
        case missingDataTerminator
        /// The trailer section is longer than the limit.
        case trailersTooLarge

        public var description: String {
            switch self {
            case .malformedChunkSize: "malformed chunk size"
            case .chunkSizeLineTooLong: "chunk size line too long"
            case .missingDataTerminator: "chunk data not followed by CRLF"
            case .trailersTooLarge: "chunk trailers too large"
            }
        }
    }

    private enum Phase: Sendable, Equatable {
        case size
        case data(remaining: Int)
        case dataEnd
        case trailer
        case done
    }

    /// Longest size line (size and extensions) accepted.
    public let maxSizeLineLength: Int
    /// Most trailer bytes accepted.
    public let maxTrailerBytes: Int
    private var phase = Phase.size
    private var size = 0
    private var sawDigit = false
    private var sizeDone = false
    private var lineLength = 0
    private var trailerBytes = 0

    public init(maxSizeLineLength: Int = 4096, maxTrailerBytes: Int = 64 * 1024) {
        self.maxSizeLineLength = maxSizeLineLength
        self.maxTrailerBytes = maxTrailerBytes
    }

    /// The last chunk and trailers have been read.
    public var isComplete: Bool { phase == .done }

    /// Bytes of chunk data still expected in the current chunk (0 outside data).
    public var dataRemaining: Int {
        if case .data(let remaining) = phase { return remaining }
        return 0
    }

    /// Skips `count` bytes of chunk data that will never arrive (a capture
    /// gap); false when they do not lie within the current chunk's data.
    public mutating func skipData(_ count: Int) -> Bool {
        guard case .data(let remaining) = phase, count <= remaining else { return false }
        phase = remaining == count ? .dataEnd : .data(remaining: remaining - count)
        return true
    }

    /// Consumes bytes from `index` on, advancing it: just past the body's
    /// last byte once it is complete, else to `bytes.count`. On an error it
    /// is left just past the byte at fault.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer, at index: inout Int) throws(DecodingError) {
        let count = bytes.count
        while index < count {
            switch phase {
            case .data(let remaining):
                let take = min(remaining, count - index)
                index += take
                phase = remaining == take ? .dataEnd : .data(remaining: remaining - take)
            case .size:
                let byte = bytes[index]
                index += 1
                try sizeLine(byte)
            case .dataEnd:
                let byte = bytes[index]
                index += 1
                if byte == 0x0a {
                    phase = .size
                    resetSizeLine()
                } else if byte != 0x0d {
                    throw .missingDataTerminator
                }
            case .trailer:
                let byte = bytes[index]
                index += 1
                if byte == 0x0a {
                    if lineLength == 0 {
                        phase = .done
                        return
                    }
                    lineLength = 0
                } else if byte != 0x0d {
                    lineLength += 1
                    trailerBytes += 1
                    if trailerBytes > maxTrailerBytes { throw .trailersTooLarge }
                }
            case .done:
                return
            }
        }
    }

    private mutating func sizeLine(_ byte: UInt8) throws(DecodingError) {
        lineLength += 1
        if byte == 0x0a {
            guard sawDigit else { throw .malformedChunkSize }
            phase = size == 0 ? .trailer : .data(remaining: size)
            lineLength = 0
        } else if !sizeDone, let digit = Self.hexValue(byte) {
            guard size < (1 << 40) else { throw .malformedChunkSize }
            size = size << 4 | digit
            sawDigit = true
        } else if !sawDigit {
            throw .malformedChunkSize
        } else {
            // Extensions (`;name=value`), whitespace and the CR: delimited, not interpreted.
            sizeDone = true
            if lineLength > maxSizeLineLength { throw .chunkSizeLineTooLong }
        }
    }

    private mutating func resetSizeLine() {
        size = 0
        sawDigit = false
        sizeDone = false
        lineLength = 0
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case 0x30...0x39: Int(byte - 0x30)
        case 0x41...0x46: Int(byte - 0x41 + 10)
        case 0x61...0x66: Int(byte - 0x61 + 10)
        default: nil
        }
    }
}
