import Replay

/// What the engine needs to know, derived from `RawInputOptions`.
struct CaptureEngineConfiguration: Sendable {
    /// Ports that identify the server side; empty: guess from SYN or payload.
    var serverPorts: Set<UInt16> = []
    /// Server addresses; empty: any.
    var serverHosts: Set<IPAddress> = []
    /// Destinations never captured (the replay targets).
    var excludedDestinations: Set<TCPEndpoint> = []
    var trackResponses = false
    var expireNanoseconds: Int64 = 2_000_000_000
    /// Idle connections without a message in progress are forgotten after this.
    var connectionIdleNanoseconds: Int64 = 60_000_000_000
    var allowIncomplete = false
    var realIPHeader: String? = nil
    /// GoReplay removes `Expect: 100-continue` from captured requests.
    var removeExpectContinue = true
    var framerLimits = HTTPMessageFramer.Limits()
    var maxReorderBytesPerDirection = 4 * 1024 * 1024
    var maxTotalBufferedBytes = 512 * 1024 * 1024
    var maxConnections = 100_000
}

/// Turns decoded packets into HTTP messages: the connection table, the two
/// reassembled directions of each connection and their framers.
///
/// It is driven by one thread (a pcap read loop) and uses capture time as its
/// clock, so a pcap file gives the same result on every run.
final class CaptureEngine {
    let configuration: CaptureEngineConfiguration
    private let decoder: PacketDecoder
    private var connections: [ConnectionKey: Connection] = [:]
    private(set) var statistics = CaptureStatistics()
    /// Messages ready for the consumer, in completion order.
    var output: [ReplayMessage] = []
    private var totalBuffered = 0
    private var lastSweep: Int64 = 0

    init(configuration: CaptureEngineConfiguration, linkType: LinkType) {
        self.configuration = configuration
        self.decoder = PacketDecoder(linkType: linkType)
    }

    /// Processes one captured packet.
    func process(packet: UnsafeRawBufferPointer, wireLength: Int, timestamp: Int64) {
        statistics.packetsSeen += 1
        let segment: TCPSegment
        switch decoder.decode(packet, wireLength: wireLength) {
        case .success(let decoded): segment = decoded
        case .failure:
            statistics.packetsUndecodable += 1
            return
        }
        if segment.truncatedBytes > 0 { statistics.packetsTruncated += 1 }
        if configuration.excludedDestinations.contains(segment.destination)
            || configuration.excludedDestinations.contains(segment.source)
        {
            statistics.packetsIgnored += 1
            return
        }
        guard let (connection, fromClient) = connectionFor(segment, packet: packet, timestamp: timestamp) else {
            return
        }
        let before = connection.bufferedBytes
        connection.lastActivity = timestamp
        let payload = UnsafeRawBufferPointer(rebasing: packet[segment.payload])
        let mark = StreamMark(
            timestamp: timestamp, sequence: segment.sequence, acknowledgement: segment.acknowledgement)
        if fromClient {
            if configuration.trackResponses, segment.flags.contains(.ack) {
                connection.response.acknowledged(segment.acknowledgement)
            }
            connection.request.receive(segment, payload: payload, mark: mark)
            if segment.truncatedBytes > 0 {
                connection.request.truncated(lostBytes: segment.truncatedBytes)
            }
        } else {
            if segment.flags.contains(.ack) {
                connection.request.acknowledged(segment.acknowledgement)
            }
            if configuration.trackResponses {
                connection.response.receive(segment, payload: payload, mark: mark)
                if segment.truncatedBytes > 0 {
                    connection.response.truncated(lostBytes: segment.truncatedBytes)
                }
            }
        }
        collect(connection)
        totalBuffered += connection.bufferedBytes - before
        if totalBuffered > configuration.maxTotalBufferedBytes {
            let held = connection.bufferedBytes
            connection.request.shed(reason: .totalMemoryLimit)
            connection.response.shed(reason: .totalMemoryLimit)
            collect(connection)
            totalBuffered += connection.bufferedBytes - held
        }
        if connection.request.ended && (connection.response.ended || !configuration.trackResponses) {
            remove(connection)
        }
        if timestamp - lastSweep >= 100_000_000 {
            tick(now: timestamp)
        }
    }

    /// Expires idle messages, gaps and connections as of `now` (ns).
    func tick(now: Int64) {
        lastSweep = now
        var idle: [Connection] = []
        for connection in connections.values {
            let before = connection.bufferedBytes
            connection.request.expireIfIdle(
                now: now, after: configuration.expireNanoseconds, allowIncomplete: configuration.allowIncomplete)
            connection.response.expireIfIdle(
                now: now, after: configuration.expireNanoseconds, allowIncomplete: configuration.allowIncomplete)
            collect(connection)
            totalBuffered += connection.bufferedBytes - before
            if now - connection.lastActivity > configuration.connectionIdleNanoseconds
                || (now - connection.lastActivity > configuration.expireNanoseconds && connection.request.ended)
            {
                idle.append(connection)
            }
        }
        for connection in idle {
            statistics.connectionsExpired += 1
            remove(connection)
        }
        statistics.connectionsActive = connections.count
        statistics.bytesBuffered = totalBuffered
    }

    /// The input ended: everything still in progress is given up (or emitted
    /// incomplete with allow-incomplete).
    func finish() {
        for connection in connections.values {
            connection.request.inputEnded(allowIncomplete: configuration.allowIncomplete)
            connection.response.inputEnded(allowIncomplete: configuration.allowIncomplete)
            collect(connection)
        }
        connections.removeAll()
        totalBuffered = 0
        statistics.connectionsActive = 0
        statistics.bytesBuffered = 0
    }

    /// Records a message the consumer could not take.
    func countDroppedOutput(_ message: ReplayMessage) {
        if message.type == .request { statistics.requestsEmitted -= 1 } else { statistics.responsesEmitted -= 1 }
        statistics.messagesGivenUp[.outputQueueFull, default: 0] += 1
        statistics.bytesGivenUp += message.payload.count
    }

    func addPcapDrops(kernel: Int, interface: Int) {
        statistics.packetsDroppedByKernel = kernel
        statistics.packetsDroppedByInterface = interface
    }

    // MARK: - Connections

    private func connectionFor(_ segment: TCPSegment, packet: UnsafeRawBufferPointer, timestamp: Int64) -> (
        Connection, Bool
    )? {
        let forward = ConnectionKey(client: segment.source, server: segment.destination)
        if let existing = connections[forward] {
            if segment.flags.contains(.syn), !segment.flags.contains(.ack),
                existing.request.hasSeenData || existing.request.ended
            {
                // The 4-tuple is being reused by a new connection.
                existing.request.inputEnded(allowIncomplete: false, reason: .closedMidMessage)
                existing.response.inputEnded(allowIncomplete: false, reason: .closedMidMessage)
                collect(existing)
                remove(existing)
            } else {
                return (existing, true)
            }
        }
        let backward = ConnectionKey(client: segment.destination, server: segment.source)
        if let existing = connections[backward] {
            return (existing, false)
        }
        guard let clientIsSource = classify(segment, packet: packet) else {
            statistics.packetsIgnored += 1
            return nil
        }
        let payloadEmpty = segment.payload.isEmpty
        // A bare FIN/RST/ACK of an untracked connection starts nothing useful.
        if !segment.flags.contains(.syn) && payloadEmpty {
            return nil
        }
        guard connections.count < configuration.maxConnections else {
            statistics.messagesGivenUp[.connectionLimit, default: 0] += 1
            statistics.bytesGivenUp += segment.payload.count
            return nil
        }
        let key = clientIsSource ? forward : backward
        let fromStart = segment.flags.contains(.syn)
        let connection = Connection(key: key, synchronized: fromStart, configuration: configuration)
        connections[key] = connection
        statistics.connectionsTracked += 1
        if !fromStart { statistics.connectionsSeenMidStream += 1 }
        statistics.connectionsActive = connections.count
        return (connection, clientIsSource)
    }

    /// True when the segment's source is the client; nil: not ours.
    private func classify(_ segment: TCPSegment, packet: UnsafeRawBufferPointer) -> Bool? {
        if !configuration.serverPorts.isEmpty {
            let hosts = configuration.serverHosts
            let hostOK = { (address: IPAddress) in hosts.isEmpty || hosts.contains(address) }
            if configuration.serverPorts.contains(segment.destination.port), hostOK(segment.destination.address) {
                return true
            }
            if configuration.serverPorts.contains(segment.source.port), hostOK(segment.source.address) { return false }
            return nil
        }
        if segment.flags.contains(.syn) { return !segment.flags.contains(.ack) }
        let payload = UnsafeRawBufferPointer(rebasing: packet[segment.payload])
        if HTTPStartLine.check(payload, role: .response) != .invalid { return false }
        if HTTPStartLine.check(payload, role: .request) != .invalid { return true }
        return segment.destination.port < segment.source.port
    }

    private func remove(_ connection: Connection) {
        totalBuffered -= connection.bufferedBytes
        connections[connection.key] = nil
        statistics.connectionsActive = connections.count
    }

    /// Moves a connection's framed messages and counters into the engine.
    private func collect(_ connection: Connection) {
        collect(connection.request, of: connection, isRequest: true)
        collect(connection.response, of: connection, isRequest: false)
    }

    private func collect(_ direction: StreamDirection, of connection: Connection, isRequest: Bool) {
        let sink = direction.sink
        if sink.events.isEmpty && direction.reassembler.retransmittedBytes == 0
            && direction.reassembler.outOfOrderSegments == 0 && sink.gaps == 0
        {
            return
        }
        statistics.bytesRetransmitted += direction.reassembler.retransmittedBytes
        statistics.segmentsOutOfOrder += direction.reassembler.outOfOrderSegments
        direction.reassembler.retransmittedBytes = 0
        direction.reassembler.outOfOrderSegments = 0
        statistics.streamGaps += sink.gaps
        statistics.bytesNeverCaptured += sink.gapBytes
        sink.gaps = 0
        sink.gapBytes = 0
        for event in sink.events {
            handle(event, on: connection, isRequest: isRequest)
        }
        sink.events.removeAll(keepingCapacity: true)
    }

    private func handle(_ event: FramerEvent, on connection: Connection, isRequest: Bool) {
        switch event {
        case .requestHead(let method, let first):
            let id = connection.requestID(first: first)
            if configuration.trackResponses {
                connection.response.sink.framer.expectResponse(ExpectedResponse(method: method, id: id))
            }
        case .message(let message):
            emit(message, connection: connection, isRequest: isRequest)
        case .interimResponse:
            statistics.interimResponsesSkipped += 1
        case .gaveUp(let reason, let bytes):
            if isRequest { connection.currentRequestID = nil }
            statistics.messagesGivenUp[reason, default: 0] += 1
            statistics.bytesGivenUp += bytes
        case .skipped(let bytes):
            statistics.bytesGivenUp += bytes
        }
    }

    private func emit(_ message: FramedMessage, connection: Connection, isRequest: Bool) {
        if !message.isComplete { statistics.incompleteMessagesEmitted += 1 }
        let latency = message.lastTimestamp - message.first.timestamp
        if isRequest {
            statistics.requestsEmitted += 1
            defer { connection.currentRequestID = nil }
            output.append(
                ReplayMessage(
                    type: .request,
                    id: connection.currentRequestID ?? connection.id(suffix: message.first.acknowledgement),
                    timestamp: message.first.timestamp, latency: latency,
                    payload: requestPayload(message, client: connection.key.client)))
        } else {
            statistics.responsesEmitted += 1
            output.append(
                ReplayMessage(
                    type: .response, id: message.request?.id ?? connection.id(suffix: message.first.sequence),
                    timestamp: message.first.timestamp, latency: latency, payload: message.bytes))
        }
    }

    private func requestPayload(_ message: FramedMessage, client: TCPEndpoint) -> [UInt8] {
        let removeExpect = configuration.removeExpectContinue ? message.expectContinueLine : nil
        guard removeExpect != nil || configuration.realIPHeader != nil else { return message.bytes }
        var bytes = message.bytes
        if let range = removeExpect, range.upperBound <= bytes.count {
            bytes.removeSubrange(range)
        }
        if let name = configuration.realIPHeader, message.startLineLength > 0, message.startLineLength <= bytes.count {
            bytes.insert(contentsOf: Array("\(name): \(client.address)\r\n".utf8), at: message.startLineLength)
        }
        return bytes
    }
}

/// A connection's identity: client and server ends.
struct ConnectionKey: Hashable {
    var client: TCPEndpoint
    var server: TCPEndpoint
}

/// Collects what a framer reports while the reassembler feeds it.
final class FramingSink: StreamSink {
    var framer: HTTPMessageFramer
    var events: [FramerEvent] = []
    var lastActivity: Int64 = 0
    var sawData = false
    /// Losses reported, and bytes never seen because of them.
    var gaps = 0
    var gapBytes = 0

    init(framer: HTTPMessageFramer) {
        self.framer = framer
    }

    func deliver(_ bytes: UnsafeRawBufferPointer, mark: StreamMark) {
        sawData = true
        lastActivity = mark.timestamp
        framer.consume(bytes, mark: mark, into: &events)
    }

    func gap(lostBytes: Int?, reason: GiveUpReason) {
        gaps += 1
        gapBytes += lostBytes ?? 0
        if reason == .sequenceGap {
            framer.gap(lostBytes: lostBytes, into: &events)
        } else {
            // Limits: give the message up under the limit's name, then resync.
            framer.expire(allowIncomplete: false, reason: reason, into: &events)
            framer.gap(lostBytes: nil, into: &events)
        }
    }

    func end(reset: Bool) {
        framer.finish(reset: reset, into: &events)
    }
}

/// One direction of a connection: reassembly feeding framing.
final class StreamDirection {
    var reassembler: TCPStreamReassembler
    var sink: FramingSink

    init(role: HTTPMessageFramer.Role, synchronized: Bool, configuration: CaptureEngineConfiguration) {
        reassembler = TCPStreamReassembler(maxBufferedBytes: configuration.maxReorderBytesPerDirection)
        sink = FramingSink(
            framer: HTTPMessageFramer(role: role, synchronized: synchronized, limits: configuration.framerLimits))
    }

    var ended: Bool { reassembler.ended }
    var hasSeenData: Bool { sink.sawData }
    var bufferedBytes: Int { reassembler.bufferedBytes + sink.framer.bufferedBytes }

    func receive(_ segment: TCPSegment, payload: UnsafeRawBufferPointer, mark: StreamMark) {
        if payload.isEmpty && segment.flags.isDisjoint(with: [.syn, .fin, .rst]) { return }
        reassembler.receive(sequence: segment.sequence, flags: segment.flags, payload: payload, mark: mark, into: &sink)
    }

    func acknowledged(_ ack: UInt32) {
        reassembler.peerAcknowledged(ack, into: &sink)
    }

    /// The snap length cut bytes off a packet: those bytes are a gap.
    func truncated(lostBytes: Int) {
        sink.gap(lostBytes: lostBytes, reason: .sequenceGap)
    }

    func shed(reason: GiveUpReason) {
        reassembler.discardBuffered(reason: reason, into: &sink)
        if sink.framer.hasMessageInProgress {
            sink.framer.expire(allowIncomplete: false, reason: reason, into: &sink.events)
        }
    }

    func expireIfIdle(now: Int64, after expire: Int64, allowIncomplete: Bool) {
        if let opened = reassembler.gapOpenedAt, now - opened > expire {
            reassembler.resolveGap(reason: .sequenceGap, into: &sink)
        }
        if sink.framer.hasMessageInProgress, now - sink.lastActivity > expire {
            sink.framer.expire(allowIncomplete: allowIncomplete, into: &sink.events)
        }
    }

    func inputEnded(allowIncomplete: Bool, reason: GiveUpReason = .inputEnded) {
        if reassembler.hasGap {
            reassembler.resolveGap(reason: .sequenceGap, into: &sink)
        }
        sink.framer.expire(allowIncomplete: allowIncomplete, reason: reason, into: &sink.events)
    }
}

/// Both directions of one TCP connection.
final class Connection {
    let key: ConnectionKey
    let request: StreamDirection
    let response: StreamDirection
    var lastActivity: Int64 = 0
    /// First 16 hex digits of GoReplay's id: client port, server port and
    /// client address.
    private let idPrefix: String

    init(key: ConnectionKey, synchronized: Bool, configuration: CaptureEngineConfiguration) {
        self.key = key
        request = StreamDirection(role: .request, synchronized: synchronized, configuration: configuration)
        response = StreamDirection(role: .response, synchronized: synchronized, configuration: configuration)
        let bits = UInt64(key.client.port) << 48 | UInt64(key.server.port) << 32 | UInt64(key.client.address.idBits)
        idPrefix = hexDigits(bits, width: 16)
    }

    var bufferedBytes: Int { request.bufferedBytes + response.bufferedBytes }

    /// Id of the request being framed (set when its head is parsed).
    var currentRequestID: String?
    /// ACK of the previous request, to tell pipelined requests apart.
    private var previousRequestAck: UInt32?

    /// GoReplay 1.3 id: the prefix and the request's ACK (= its response's
    /// SEQ). Pipelined requests sent before any response share one ACK;
    /// to keep ids unique, the second and later of them use their own
    /// sequence number instead.
    func requestID(first: StreamMark) -> String {
        let pipelined = previousRequestAck == first.acknowledgement
        previousRequestAck = first.acknowledgement
        let id = self.id(suffix: pipelined ? first.sequence : first.acknowledgement)
        currentRequestID = id
        return id
    }

    func id(suffix: UInt32) -> String {
        idPrefix + hexDigits(UInt64(suffix), width: 8)
    }
}

/// Lowercase hex, zero-padded to `width` digits.
func hexDigits(_ value: UInt64, width: Int) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}
