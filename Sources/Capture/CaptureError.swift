/// Why a capture could not start or stopped.
public enum CaptureError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An address given to `--input-raw` (or a replay target) is malformed.
    case invalidAddress(String, reason: String)
    /// Live capture was refused for lack of privileges.
    case permissionDenied(device: String)
    /// No capture device matches the address.
    case noDevice(address: String, reason: String)
    /// libpcap could not open or activate a device.
    case deviceUnavailable(device: String, message: String)
    /// The BPF filter did not compile or could not be installed.
    case invalidFilter(filter: String, message: String)
    /// A pcap file could not be opened.
    case unreadablePcapFile(path: String, message: String)
    /// The device or file has a link-layer type capture cannot decode.
    case unsupportedLinkType(source: String, linkType: Int32)
    /// A replay target is the captured address: replayed requests would be
    /// captured and replayed again forever.
    case replayLoop(target: String, captured: String)
    /// Reading packets failed after the capture started.
    case readFailed(source: String, message: String)

    public var description: String {
        switch self {
        case .invalidAddress(let address, let reason):
            return "invalid address '\(address)': \(reason)"
        case .permissionDenied(let device):
            return
                "cannot capture on \(device): live capture needs root or CAP_NET_RAW (and CAP_NET_ADMIN): run as root or `setcap cap_net_raw,cap_net_admin+eip <path to goreplay>`"
        case .noDevice(let address, let reason):
            return "no capture device for \(address): \(reason)"
        case .deviceUnavailable(let device, let message):
            return "cannot open capture device \(device): \(message)"
        case .invalidFilter(let filter, let message):
            return "invalid BPF filter '\(filter)': \(message)"
        case .unreadablePcapFile(let path, let message):
            return "cannot read pcap file \(path): \(message)"
        case .unsupportedLinkType(let source, let linkType):
            return
                "\(source): unsupported link-layer type \(linkType) (supported: Ethernet, BSD loopback, Linux cooked v1/v2, raw IP)"
        case .replayLoop(let target, let captured):
            return
                "replay target \(target) is the captured address \(captured): goreplay would capture and replay its own requests forever; replay to a different host or port"
        case .readFailed(let source, let message):
            return "capture on \(source) failed: \(message)"
        }
    }
}
