import Foundation
import Replay

/// Where one capture thread reads from, and with which filter.
public struct CaptureSource: Sendable, Hashable, CustomStringConvertible {
    /// Device name for live capture, nil for a file.
    public var device: String?
    /// Pcap file path, nil for live capture.
    public var file: String?
    /// The BPF filter applied (empty: none).
    public var filter: String

    public var description: String {
        if let file { return "pcap file \(file)" + (filter.isEmpty ? "" : " . BPF Filter: \(filter)") }
        return "Interface: \(device ?? "?") . BPF Filter: \(filter)"
    }
}

/// `--input-raw`: HTTP messages captured live with libpcap, or read from a
/// pcap file, reassembled per TCP connection and framed as HTTP/1.x.
///
/// Each device (or the file) is read on its own thread, never on Swift's
/// cooperative pool; messages are delivered in completion order.
public struct RawCaptureInput: MessageInput {
    public let options: RawInputOptions
    /// Devices (or the file) and filters this input will read.
    public let sources: [CaptureSource]
    private let configuration: CaptureEngineConfiguration
    private let board = StatisticsBoard()

    /// Validates the options and chooses devices and filters. Opening the
    /// devices (and so the privilege check) happens in `messages()`.
    public init(options: RawInputOptions) throws(CaptureError) {
        self.options = options
        try options.checkNoReplayLoop()
        configuration = try options.engineConfiguration()
        sources = try Self.plan(options)
    }

    public var name: String {
        if let file = options.pcapFile { return "pcap:\(file)" }
        return "raw:" + options.addresses.map(\.description).joined(separator: ",")
    }

    /// Counters so far (all sources together); final once `isRunning` is
    /// false after the stream ended or was cancelled.
    public var statistics: CaptureStatistics { board.total() }

    /// True while a capture thread is still reading (it stops shortly after
    /// the consumer cancels, publishing its last counters).
    public var isRunning: Bool { board.isRunning }

    public func messages() -> AsyncThrowingStream<ReplayMessage, any Error> {
        let queue = MessageQueue(limit: options.outputQueueLimit, sources: sources.count)
        let token = CancelOnRelease(queue)
        do {
            var handles: [PcapHandle] = []
            do {
                for source in sources {
                    let handle =
                        try source.file.map { (path) throws(CaptureError) in try PcapHandle.openFile(path) }
                        ?? PcapHandle.openLive(device: source.device ?? "lo", options: options)
                    handles.append(handle)
                    if !source.filter.isEmpty { try handle.setFilter(source.filter) }
                }
            } catch {
                for handle in handles { handle.close() }
                throw error
            }
            for (index, handle) in handles.enumerated() {
                queue.onCancel { handle.breakLoop() }
                board.sourceStarted()
                let thread = Thread { [configuration, board] in
                    Self.readLoop(
                        handle: handle, index: index, configuration: configuration, queue: queue, board: board)
                }
                thread.name = "capture \(handle.source)"
                thread.start()
            }
        } catch {
            queue.sourceFinished(error: error)
        }
        return AsyncThrowingStream {
            try await token.queue.next()
        }
    }

    // MARK: - Reading

    private static func readLoop(
        handle: PcapHandle, index: Int, configuration: CaptureEngineConfiguration, queue: MessageQueue,
        board: StatisticsBoard
    ) {
        let engine = CaptureEngine(configuration: configuration, linkType: handle.linkType)
        var failure: CaptureError? = nil
        var sincePublish = 0
        func flush() {
            guard !engine.output.isEmpty else { return }
            for message in engine.output where !queue.push(message, wait: !handle.isLive) {
                if queue.isCancelled { break }
                engine.countDroppedOutput(message)
            }
            engine.output.removeAll(keepingCapacity: true)
        }
        func publish() {
            var statistics = engine.statistics
            if let drops = handle.drops() {
                statistics.packetsDroppedByKernel = drops.kernel
                statistics.packetsDroppedByInterface = drops.interface
            }
            board.publish(statistics, source: index)
            sincePublish = 0
        }
        reading: while !queue.isCancelled {
            let result = handle.next { bytes, wireLength, timestamp in
                engine.process(packet: bytes, wireLength: wireLength, timestamp: timestamp)
            }
            switch result {
            case .packet:
                flush()
                sincePublish += 1
                if sincePublish >= 2048 { publish() }
            case .timeout:
                engine.tick(now: wallClockNanoseconds())
                flush()
                publish()
            case .end:
                break reading
            case .failed(let message):
                failure = .readFailed(source: handle.source, message: message)
                break reading
            }
        }
        if !handle.isLive && !queue.isCancelled {
            engine.finish()
            flush()
        }
        publish()
        board.sourceStopped()
        handle.close()
        queue.sourceFinished(error: failure)
    }

    private static func wallClockNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    // MARK: - Planning devices and filters

    static func plan(_ options: RawInputOptions) throws(CaptureError) -> [CaptureSource] {
        if let file = options.pcapFile {
            return [CaptureSource(device: nil, file: file, filter: options.bpfFilter ?? "")]
        }
        guard !options.addresses.isEmpty else {
            throw .invalidAddress("", reason: "give at least one address to capture, e.g. :80 or 127.0.0.1:8080")
        }
        var byDevice: [(device: CaptureDevice, addresses: [CaptureAddress])] = []
        func add(_ device: CaptureDevice, _ address: CaptureAddress) {
            if let index = byDevice.firstIndex(where: { $0.device.name == device.name }) {
                if !byDevice[index].addresses.contains(address) { byDevice[index].addresses.append(address) }
            } else {
                byDevice.append((device, [address]))
            }
        }
        let devices = try captureDevices()
        if !options.interfaces.isEmpty {
            for name in options.interfaces {
                guard let device = devices.first(where: { $0.name == name }) else {
                    throw .noDevice(
                        address: name,
                        reason: "no such interface (have: \(devices.map(\.name).joined(separator: ", ")))")
                }
                for address in options.addresses { add(device, address) }
            }
        } else {
            for address in options.addresses {
                if address.host.isEmpty {
                    let candidates = devices.filter { $0.isUp && !$0.addresses.isEmpty && $0.name != "any" }
                    guard !candidates.isEmpty else {
                        throw .noDevice(address: address.description, reason: "no interface is up with an address")
                    }
                    for candidate in candidates { add(candidate, address) }
                    continue
                }
                for ip in try address.resolvedAddresses() {
                    let device =
                        ip.isLoopback
                        ? devices.first(where: \.isLoopback)
                        : devices.first(where: { $0.addresses.contains(ip) })
                    guard let device else {
                        throw .noDevice(address: address.description, reason: "no local interface has address \(ip)")
                    }
                    add(device, address)
                }
            }
        }
        return byDevice.map { entry in
            CaptureSource(
                device: entry.device.name, file: nil,
                filter: options.bpfFilter
                    ?? filter(for: entry.addresses, deviceAddresses: entry.device.addresses, options: options))
        }
    }

    /// GoReplay's generated filter: requests to the captured port and hosts,
    /// with track-response also what those hosts send back, never the
    /// replay targets.
    static func filter(for addresses: [CaptureAddress], deviceAddresses: [IPAddress], options: RawInputOptions)
        -> String
    {
        var clauses: [String] = []
        for address in addresses {
            guard address.port != 0 else {
                clauses.append("tcp")
                continue
            }
            let hosts = address.host.isEmpty ? deviceAddresses : ((try? address.resolvedAddresses()) ?? [])
            func hostClause(_ direction: String) -> String {
                hosts.isEmpty ? "" : " and (" + hosts.map { "\(direction) host \($0)" }.joined(separator: " or ") + ")"
            }
            clauses.append("(tcp dst port \(address.port)\(hostClause("dst")))")
            if options.trackResponse {
                clauses.append("(tcp src port \(address.port)\(hostClause("src")))")
            }
        }
        var filter = "(" + clauses.joined(separator: " or ") + ")"
        for target in options.excludedDestinations {
            for ip in (try? target.resolvedAddresses()) ?? [] {
                filter += " and not (dst host \(ip) and tcp dst port \(target.port))"
                filter += " and not (src host \(ip) and tcp src port \(target.port))"
            }
        }
        return filter
    }
}
