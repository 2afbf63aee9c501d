/// What a `.gor` record carries: GoReplay's payload types.
public enum PayloadType: UInt8, Sendable, Hashable {
    /// A captured request (type 1).
    case request = 1
    /// The original response, captured with the request (type 2).
    case response = 2
    /// A response from a replay target (type 3).
    case replayedResponse = 3
}

/// One unit of traffic as it moves from an input through filters to outputs.
///
/// It is what a `.gor` record holds: the meta line's fields and the raw HTTP
/// bytes exactly as captured. Inputs (file, live capture) make these; outputs
/// (HTTP, file, stdout) consume them.
public struct ReplayMessage: Sendable, Hashable {
    public var type: PayloadType
    /// Opaque hex id shared by a request and its responses: 24 hex digits
    /// (GoReplay 1.3+) or 40 (0.16).
    public var id: String
    /// Nanoseconds since the Unix epoch: when the first packet was seen.
    public var timestamp: Int64
    /// Nanoseconds between first and last packet (or the round trip for a
    /// replayed response); nil where the record had GoReplay 0.16's three-field
    /// meta line.
    public var latency: Int64?
    /// The raw HTTP message, CRLFs intact.
    public var payload: [UInt8]

    public init(type: PayloadType, id: String, timestamp: Int64, latency: Int64?, payload: [UInt8]) {
        self.type = type
        self.id = id
        self.timestamp = timestamp
        self.latency = latency
        self.payload = payload
    }
}

/// A source of messages: a `.gor` file, a pcap file, live capture.
///
/// The replay pipeline only sees this protocol, so live capture (the `Capture`
/// target) plugs in without `Replay` knowing about pcap.
public protocol MessageInput: Sendable {
    /// A short description for logs and stats, e.g. `file:requests.gor`.
    var name: String { get }
    /// Produces messages in order until the input ends, fails or the
    /// consuming task is cancelled.
    func messages() -> AsyncThrowingStream<ReplayMessage, any Error>
}
