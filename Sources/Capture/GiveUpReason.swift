/// Why capture gave up on a message (or on bytes it could not frame). Every
/// message lost is counted under one of these, never dropped silently.
public enum GiveUpReason: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// A sequence gap that was never filled: the kernel or pcap lost a segment.
    case sequenceGap = "sequence_gap"
    /// Still incomplete when its stream had been idle for the expiry time.
    case expiredIncomplete = "expired_incomplete"
    /// The connection closed (FIN) before the message was complete.
    case closedMidMessage = "closed_mid_message"
    /// The connection was reset (RST) before the message was complete.
    case connectionReset = "connection_reset"
    /// The bytes did not start with an HTTP/1.x request or status line.
    case notHTTP = "not_http"
    /// Invalid Content-Length, chunk size or Transfer-Encoding.
    case badFraming = "bad_framing"
    /// The header block exceeded the configured limit.
    case headerTooLarge = "header_too_large"
    /// The message exceeded the configured per-message limit.
    case messageTooLarge = "message_too_large"
    /// Out-of-order data for one direction exceeded its buffer limit.
    case reorderBufferFull = "reorder_buffer_full"
    /// All connections together exceeded the total memory limit.
    case totalMemoryLimit = "total_memory_limit"
    /// The connection table was full, so a new connection was not tracked.
    case connectionLimit = "connection_limit"
    /// The consumer of messages fell behind and the output queue was full.
    case outputQueueFull = "output_queue_full"
    /// A pcap file ended while the message was incomplete.
    case inputEnded = "input_ended"

    public var description: String { rawValue }
}
