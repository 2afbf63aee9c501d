/// Counters for one capture, readable while it runs and at the end.
///
/// Every message capture saw the start of ends up either emitted or in
/// `messagesGivenUp` under its reason; bytes that never became part of a
/// message are in `bytesGivenUp`.
public struct CaptureStatistics: Sendable, Hashable, CustomStringConvertible {
    /// Packets handed to capture by pcap.
    public var packetsSeen = 0
    /// Packets the kernel dropped because the capture buffer was full
    /// (`pcap_stats` `ps_drop`).
    public var packetsDroppedByKernel = 0
    /// Packets the interface or driver dropped (`ps_ifdrop`).
    public var packetsDroppedByInterface = 0
    /// Packets that were not TCP over IPv4/IPv6 or had broken headers.
    public var packetsUndecodable = 0
    /// Packets cut short by the snap length.
    public var packetsTruncated = 0
    /// TCP packets not on a captured address, or to an excluded destination.
    public var packetsIgnored = 0
    /// Payload bytes seen again (retransmissions and overlaps), trimmed.
    public var bytesRetransmitted = 0
    /// Segments that arrived ahead of a gap and were buffered.
    public var segmentsOutOfOrder = 0
    public var requestsEmitted = 0
    public var responsesEmitted = 0
    /// Messages emitted on expiry with allow-incomplete (also counted above).
    public var incompleteMessagesEmitted = 0
    /// 1xx responses framed and not emitted.
    public var interimResponsesSkipped = 0
    /// Connections ever tracked.
    public var connectionsTracked = 0
    /// Connections first seen after their SYN.
    public var connectionsSeenMidStream = 0
    /// Connections dropped after being idle.
    public var connectionsExpired = 0
    /// Connections tracked right now.
    public var connectionsActive = 0
    /// Messages given up, by reason.
    public var messagesGivenUp: [GiveUpReason: Int] = [:]
    /// Captured payload bytes that did not end up in an emitted message.
    public var bytesGivenUp = 0
    /// Stream gaps given up on (segments the capture never saw); a gap
    /// between messages can hide whole messages, which no other counter sees.
    public var streamGaps = 0
    /// Stream bytes inside those gaps.
    public var bytesNeverCaptured = 0
    /// Bytes held in reorder and message buffers right now.
    public var bytesBuffered = 0

    public init() {}

    public var messagesEmitted: Int { requestsEmitted + responsesEmitted }
    public var messagesGivenUpTotal: Int { messagesGivenUp.values.reduce(0, +) }

    /// Adds another capture's counters (one per device).
    public mutating func add(_ other: CaptureStatistics) {
        packetsSeen += other.packetsSeen
        packetsDroppedByKernel += other.packetsDroppedByKernel
        packetsDroppedByInterface += other.packetsDroppedByInterface
        packetsUndecodable += other.packetsUndecodable
        packetsTruncated += other.packetsTruncated
        packetsIgnored += other.packetsIgnored
        bytesRetransmitted += other.bytesRetransmitted
        segmentsOutOfOrder += other.segmentsOutOfOrder
        requestsEmitted += other.requestsEmitted
        responsesEmitted += other.responsesEmitted
        incompleteMessagesEmitted += other.incompleteMessagesEmitted
        interimResponsesSkipped += other.interimResponsesSkipped
        connectionsTracked += other.connectionsTracked
        connectionsSeenMidStream += other.connectionsSeenMidStream
        connectionsExpired += other.connectionsExpired
        connectionsActive += other.connectionsActive
        for (reason, count) in other.messagesGivenUp { messagesGivenUp[reason, default: 0] += count }
        bytesGivenUp += other.bytesGivenUp
        streamGaps += other.streamGaps
        bytesNeverCaptured += other.bytesNeverCaptured
        bytesBuffered += other.bytesBuffered
    }

    /// One line, `key=value` pairs, for logs and `--stats`.
    public var description: String {
        var parts = [
            "packets=\(packetsSeen)", "kernel_drops=\(packetsDroppedByKernel)", "if_drops=\(packetsDroppedByInterface)",
            "undecodable=\(packetsUndecodable)", "truncated=\(packetsTruncated)", "ignored=\(packetsIgnored)",
            "retransmitted_bytes=\(bytesRetransmitted)", "out_of_order=\(segmentsOutOfOrder)",
            "requests=\(requestsEmitted)", "responses=\(responsesEmitted)",
            "incomplete_emitted=\(incompleteMessagesEmitted)",
            "connections=\(connectionsTracked)", "mid_stream=\(connectionsSeenMidStream)",
            "expired_connections=\(connectionsExpired)",
            "active_connections=\(connectionsActive)", "given_up=\(messagesGivenUpTotal)",
            "bytes_given_up=\(bytesGivenUp)",
            "gaps=\(streamGaps)", "bytes_never_captured=\(bytesNeverCaptured)",
        ]
        for reason in GiveUpReason.allCases {
            if let count = messagesGivenUp[reason], count > 0 { parts.append("given_up.\(reason)=\(count)") }
        }
        return parts.joined(separator: " ")
    }
}
