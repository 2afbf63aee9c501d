import CPcap
import Foundation

/// A capture device as libpcap lists it.
struct CaptureDevice: Sendable {
    var name: String
    var addresses: [IPAddress]
    var isLoopback: Bool
    var isUp: Bool
}

/// Lists devices with `pcap_findalldevs`.
func captureDevices() throws(CaptureError) -> [CaptureDevice] {
    var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
    var list: UnsafeMutablePointer<pcap_if_t>?
    guard pcap_findalldevs(&list, &errorBuffer) == 0 else {
        throw .noDevice(address: "any", reason: errorText(errorBuffer))
    }
    defer { pcap_freealldevs(list) }
    var devices: [CaptureDevice] = []
    var cursor = list
    while let device = cursor {
        var addresses: [IPAddress] = []
        var address = device.pointee.addresses
        while let entry = address {
            if let socketAddress = entry.pointee.addr, let ip = ipAddress(socketAddress) {
                addresses.append(ip)
            }
            address = entry.pointee.next
        }
        let flags = device.pointee.flags
        devices.append(
            CaptureDevice(
                name: String(cString: device.pointee.name), addresses: addresses,
                isLoopback: flags & UInt32(PCAP_IF_LOOPBACK) != 0, isUp: flags & UInt32(PCAP_IF_UP) != 0))
        cursor = device.pointee.next
    }
    return devices
}

/// Every address of every local device (for the loop check).
func localAddresses() -> [IPAddress] {
    ((try? captureDevices()) ?? []).flatMap(\.addresses)
}

private func ipAddress(_ address: UnsafeMutablePointer<sockaddr>) -> IPAddress? {
    switch Int32(address.pointee.sa_family) {
    case AF_INET:
        return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
            IPAddress(bytes: withUnsafeBytes(of: pointer.pointee.sin_addr) { Array($0) })
        }
    case AF_INET6:
        return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
            IPAddress(bytes: withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) })
        }
    default:
        return nil
    }
}

/// An open pcap handle (live device or file). Only its reading thread uses
/// it, except `breakLoop`, which the lock keeps away from a closed handle.
final class PcapHandle: @unchecked Sendable {
    let source: String
    let isLive: Bool
    private var handle: OpaquePointer?
    private let lock = NSLock()
    let linkType: LinkType
    /// Sub-second timestamp units per second.
    let ticksPerSecond: Int64

    private init(source: String, isLive: Bool, handle: OpaquePointer) throws(CaptureError) {
        self.source = source
        self.isLive = isLive
        self.handle = handle
        let rawLinkType = pcap_datalink(handle)
        guard let linkType = LinkType(rawValue: rawLinkType) else {
            pcap_close(handle)
            throw .unsupportedLinkType(source: source, linkType: rawLinkType)
        }
        self.linkType = linkType
        ticksPerSecond = pcap_get_tstamp_precision(handle) == PCAP_TSTAMP_PRECISION_NANO ? 1_000_000_000 : 1_000_000
    }

    /// Opens a pcap file, with nanosecond timestamps.
    static func openFile(_ path: String) throws(CaptureError) -> PcapHandle {
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard
            let handle = pcap_open_offline_with_tstamp_precision(path, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errorBuffer)
        else {
            throw .unreadablePcapFile(path: path, message: errorText(errorBuffer))
        }
        return try PcapHandle(source: "pcap file \(path)", isLive: false, handle: handle)
    }

    /// Opens and activates a live device.
    static func openLive(device: String, options: RawInputOptions) throws(CaptureError) -> PcapHandle {
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let handle = pcap_create(device, &errorBuffer) else {
            throw .deviceUnavailable(device: device, message: errorText(errorBuffer))
        }
        pcap_set_snaplen(handle, Int32(clamping: options.snaplen))
        pcap_set_buffer_size(handle, Int32(clamping: options.bufferSize))
        pcap_set_timeout(handle, Int32(clamping: max(1, RawInputOptions.nanoseconds(options.readTimeout) / 1_000_000)))
        // Immediate mode would make libpcap use TPACKET_V2, whose ring slots
        // are snaplen-sized: with a 256 KiB snaplen a 32 MiB buffer holds
        // only ~128 packets and drops under load. TPACKET_V3 packs packets
        // into blocks handed over at least every read timeout.
        pcap_set_immediate_mode(handle, options.immediateMode ? 1 : 0)
        pcap_set_promisc(handle, 0)
        _ = pcap_set_tstamp_precision(handle, PCAP_TSTAMP_PRECISION_NANO)
        let status = pcap_activate(handle)
        if status < 0 {
            let message =
                status == PCAP_ERROR ? String(cString: pcap_geterr(handle)) : String(cString: pcap_statustostr(status))
            pcap_close(handle)
            if status == PCAP_ERROR_PERM_DENIED || (status == PCAP_ERROR && message.contains("Operation not permitted"))
            {
                throw .permissionDenied(device: device)
            }
            throw .deviceUnavailable(device: device, message: message)
        }
        return try PcapHandle(source: "device \(device)", isLive: true, handle: handle)
    }

    func setFilter(_ filter: String) throws(CaptureError) {
        guard let handle else { return }
        var program = bpf_program()
        guard pcap_compile(handle, &program, filter, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw .invalidFilter(filter: filter, message: String(cString: pcap_geterr(handle)))
        }
        defer { pcap_freecode(&program) }
        guard pcap_setfilter(handle, &program) == 0 else {
            throw .invalidFilter(filter: filter, message: String(cString: pcap_geterr(handle)))
        }
    }

    enum ReadResult {
        case packet
        case timeout
        case end
        case failed(String)
    }

    /// Reads the next packet and hands it to `body` (only valid inside it).
    func next(_ body: (UnsafeRawBufferPointer, _ wireLength: Int, _ timestamp: Int64) -> Void) -> ReadResult {
        guard let handle else { return .end }
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        let status = pcap_next_ex(handle, &header, &data)
        switch status {
        case 1:
            guard let header, let data else { return .timeout }
            let seconds = cpcap_header_seconds(header)
            let fraction = cpcap_header_subseconds(header)
            let timestamp = Int64(seconds) * 1_000_000_000 + Int64(fraction) * (1_000_000_000 / ticksPerSecond)
            body(
                UnsafeRawBufferPointer(start: data, count: Int(header.pointee.caplen)), Int(header.pointee.len),
                timestamp)
            return .packet
        case 0:
            return .timeout
        case PCAP_ERROR_BREAK:
            return .end
        default:
            return .failed(String(cString: pcap_geterr(handle)))
        }
    }

    /// Kernel and interface drop counters (live captures only).
    func drops() -> (kernel: Int, interface: Int)? {
        guard isLive, let handle else { return nil }
        var stats = pcap_stat()
        guard pcap_stats(handle, &stats) == 0 else { return nil }
        return (Int(stats.ps_drop), Int(stats.ps_ifdrop))
    }

    /// Makes a blocked `next` return `.end` soon; safe from any thread.
    func breakLoop() {
        lock.lock()
        defer { lock.unlock() }
        if let handle { pcap_breakloop(handle) }
    }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        if let handle { pcap_close(handle) }
        handle = nil
    }

    deinit {
        if let handle { pcap_close(handle) }
    }
}

/// The NUL-terminated text libpcap wrote into an error buffer.
private func errorText(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
