/// Turns chunks of remote output into whole lines, separately per host and stream.
///
/// Renderers use it so a line is only printed once complete, and lines from two hosts
/// never share a printed line however their chunks interleave.
public struct OutputLineBuffer: Sendable {
    /// A host and stream whose output is buffered.
    public struct Source: Sendable, Hashable {
        /// Host name.
        public var host: String
        /// Stream.
        public var stream: RemoteStream
    }

    /// A line longer than this is emitted in pieces, so output without newlines cannot grow without bound.
    public let maximumLineBytes: Int
    private var pending: [Source: [UInt8]] = [:]

    /// Creates a buffer.
    public init(maximumLineBytes: Int = 64 * 1024) {
        self.maximumLineBytes = max(1, maximumLineBytes)
    }

    /// Adds a chunk; returns the lines it completed (without `\n` or a trailing `\r`).
    public mutating func append(_ bytes: [UInt8], host: String, stream: RemoteStream) -> [String] {
        let source = Source(host: host, stream: stream)
        var buffer = pending[source, default: []]
        var lines: [String] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                lines.append(Self.decode(buffer))
                buffer.removeAll(keepingCapacity: true)
            } else {
                buffer.append(byte)
                if buffer.count >= maximumLineBytes {
                    lines.append(Self.decode(buffer))
                    buffer.removeAll(keepingCapacity: true)
                }
            }
        }
        pending[source] = buffer.isEmpty ? nil : buffer
        return lines
    }

    /// Removes and returns the unfinished lines of `host` (both streams, stdout first).
    public mutating func flush(host: String) -> [(stream: RemoteStream, line: String)] {
        RemoteStream.allCases.compactMap { stream in
            pending.removeValue(forKey: Source(host: host, stream: stream)).map { (stream, Self.decode($0)) }
        }
    }

    /// Removes and returns every unfinished line, ordered by host name then stream.
    public mutating func flushAll() -> [(host: String, stream: RemoteStream, line: String)] {
        let hosts = Set(pending.keys.map(\.host)).sorted()
        return hosts.flatMap { host in flush(host: host).map { (host, $0.stream, $0.line) } }
    }

    /// Lossy UTF-8 (invalid bytes become U+FFFD) without a trailing carriage return.
    static func decode(_ bytes: [UInt8]) -> String {
        let trimmed = bytes.last == UInt8(ascii: "\r") ? bytes.dropLast() : bytes[...]
        return String(decoding: trimmed, as: UTF8.self)
    }
}

/// Turns events into text to write; each returned string holds only complete lines.
public protocol FleetEventRenderer {
    /// Renders one event; returns "" when it produces no output yet.
    mutating func render(_ event: FleetEvent) -> String
}
