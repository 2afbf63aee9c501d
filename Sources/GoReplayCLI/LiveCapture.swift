import Capture
import Foundation
import Replay

/// Wires `--input-raw` to the `Capture` target: GoReplay's flag values become
/// capture options, and every `--output-http` target is excluded from
/// capture so goreplay never records its own replays (GoReplay loops there).
public enum LiveCapture {
    public static let factory: RawInputFactory = { options, address in
        try makeInput(options, address: address.address)
    }

    static func makeInput(_ options: RawInputFlags, address text: String) throws -> any MessageInput {
        var capture: RawInputOptions
        if options.engine == "pcap_file" || text.hasSuffix(".pcap") || text.hasSuffix(".pcapng") {
            capture = RawInputOptions(addresses: [CaptureAddress]())
            capture.pcapFile = text
        } else if let (interface, port) = interfaceAndPort(text) {
            capture = RawInputOptions(addresses: [CaptureAddress(host: "", port: port)])
            capture.interfaces = [interface]
        } else {
            capture = try RawInputOptions(addresses: [text])
        }
        if !["libpcap", "pcap", "pcap_file"].contains(options.engine) {
            throw LiveCaptureError.unsupportedEngine(options.engine)
        }
        capture.trackResponse = options.trackResponse
        capture.expire = options.expire
        capture.bpfFilter = options.bpfFilter
        if let snaplen = options.snaplen { capture.snaplen = snaplen }
        if let bufferSize = options.bufferSize { capture.bufferSize = bufferSize }
        capture.allowIncomplete = options.allowIncomplete
        capture.realIPHeader = options.realIPHeader
        if let timeout = options.bufferTimeout { capture.readTimeout = timeout }
        capture.excludedDestinations = try options.replayTargets.compactMap(targetAddress)
        try capture.checkNoReplayLoop()
        return try RawCaptureInput(options: capture)
    }

    /// `eth0:80` names an interface rather than a host.
    static func interfaceAndPort(_ text: String) -> (String, UInt16)? {
        guard let colon = text.lastIndex(of: ":"), !text.hasPrefix("[") else { return nil }
        let host = String(text[..<colon])
        guard !host.isEmpty, host != "localhost", let port = UInt16(text[text.index(after: colon)...]),
            host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }),
            !host.contains("."), if_nametoindex(host) != 0
        else { return nil }
        return (host, port)
    }

    /// host:port of an `--output-http` URL.
    static func targetAddress(_ target: String) throws -> CaptureAddress? {
        let withScheme = target.contains("://") ? target : "http://" + target
        guard let url = URL(string: withScheme), let host = url.host else { return nil }
        let port = url.port ?? (url.scheme == "https" ? 443 : 80)
        return CaptureAddress(host: host, port: UInt16(clamping: port))
    }
}

/// Live-capture set-up errors that are not the capture engine's own.
public enum LiveCaptureError: Error, CustomStringConvertible {
    /// Only libpcap (and pcap files) are implemented.
    case unsupportedEngine(String)

    public var description: String {
        switch self {
        case .unsupportedEngine(let name):
            return "--input-raw-engine \(name) is not supported; use libpcap (the default) or pcap_file"
        }
    }
}
