import Capture
import FuzzSupport
import Replay

/// HTTP/1.x framing of a byte stream, by both framers: Capture's ``HTTPMessageFramer`` (one
/// direction of a captured connection) and Replay's ``HTTPResponseFramer`` (a replay target's
/// response). Input: a control byte (role, HEAD or not, whether the stream starts mid-way), a
/// chunking seed, then the stream. Each framer is fed the stream whole and again in small runs.
///
/// Checks: the framer never accounts for more bytes than it was given (messages, given-up,
/// skipped and still-buffered bytes together); a clean stream (nothing skipped or given up)
/// is exactly its messages laid end to end, and framing it in runs gives the same messages;
/// the response framer decides the same way whatever the runs, and keeps at most its raw limit,
/// a prefix of what it was fed.
@main
enum FuzzHTTPFramer {
    static func main() {
        runFuzzer { data, size in
            FuzzHTTPFramer.testOneInput(fuzzInput(data, size))
            return 0
        }
    }

    static func testOneInput(_ input: UnsafeRawBufferPointer) {
        guard input.count >= 2 else { return }
        let control = input[0]
        let seed = input[1]
        let stream = UnsafeRawBufferPointer(rebasing: input[2...])
        let runs = runLengths(seed: seed, total: stream.count)
        captureFramer(stream, runs: runs, control: control)
        responseFramer(stream, runs: runs, control: control)
    }

    /// Run lengths from 1 to 16 bytes, from a small linear congruential sequence.
    static func runLengths(seed: UInt8, total: Int) -> [Int] {
        var lengths: [Int] = []
        var state = UInt32(seed) | 1
        var covered = 0
        while covered < total {
            state = state &* 1_103_515_245 &+ 12_345
            let length = min(Int((state >> 16) % 16) + 1, total - covered)
            lengths.append(length)
            covered += length
        }
        return lengths
    }

    struct Framed: Equatable {
        var bytes: [UInt8]
        var method: String?
        var status: Int?
        var isComplete: Bool
    }

    struct Outcome {
        var messages: [Framed] = []
        var accounted = 0
        var clean = true
    }

    static func captureFramer(_ stream: UnsafeRawBufferPointer, runs: [Int], control: UInt8) {
        let role: HTTPMessageFramer.Role = control & 1 == 0 ? .request : .response
        let synchronized = control & 2 == 0
        let limits = HTTPMessageFramer.Limits(maxHeaderBytes: 512, maxMessageBytes: 4096, maxPendingRequests: 4)

        func frame(_ lengths: [Int]) -> Outcome {
            var framer = HTTPMessageFramer(role: role, synchronized: synchronized, limits: limits)
            if role == .response {
                for index in 0..<6 {
                    let method = control & (4 << (index % 4)) != 0 ? "HEAD" : (index == 5 ? "CONNECT" : "GET")
                    framer.expectResponse(ExpectedResponse(method: method, id: "\(index)"))
                }
            }
            var events: [FramerEvent] = []
            var offset = 0
            for length in lengths {
                let mark = StreamMark(
                    timestamp: Int64(offset), sequence: UInt32(truncatingIfNeeded: offset), acknowledgement: 0)
                framer.consume(
                    UnsafeRawBufferPointer(rebasing: stream[offset..<(offset + length)]), mark: mark, into: &events)
                offset += length
                invariant(framer.bufferedBytes <= offset, "buffers \(framer.bufferedBytes) of \(offset) bytes given")
            }
            var outcome = tally(events)
            outcome.accounted += framer.bufferedBytes
            invariant(outcome.accounted <= stream.count, "accounts for \(outcome.accounted) of \(stream.count) bytes")
            if outcome.clean {
                let laidOut = outcome.messages.flatMap(\.bytes)
                invariant(
                    laidOut.elementsEqual(stream.prefix(stream.count - framer.bufferedBytes)),
                    "clean stream's messages are not the stream")
            }
            // At the end of the stream whatever is buffered becomes a message or is given up.
            framer.finish(reset: control & 64 != 0, into: &events)
            let finished = tally(events)
            invariant(
                finished.accounted <= stream.count,
                "after finish, accounts for \(finished.accounted) of \(stream.count) bytes")
            invariant(framer.bufferedBytes == 0 && !framer.hasMessageInProgress, "finish left a message in progress")
            return outcome
        }

        let whole = frame(stream.isEmpty ? [] : [stream.count])
        let pieces = frame(runs)
        if whole.clean && pieces.clean {
            invariant(whole.messages == pieces.messages, "messages differ when the stream arrives in runs")
        }
    }

    static func tally(_ events: [FramerEvent]) -> Outcome {
        var outcome = Outcome()
        for event in events {
            switch event {
            case .requestHead:
                break
            case .message(let message):
                outcome.messages.append(
                    Framed(
                        bytes: message.bytes, method: message.method, status: message.status,
                        isComplete: message.isComplete))
                outcome.accounted += message.bytes.count
            case .interimResponse:
                outcome.clean = false
            case .gaveUp(_, let bytes):
                outcome.accounted += bytes
                outcome.clean = false
            case .skipped(let bytes):
                outcome.accounted += bytes
                outcome.clean = false
            }
        }
        return outcome
    }

    struct Decision: Equatable {
        var complete: Bool
        var failed: Bool
        var status: Int
        var closes: Bool
        var closeDelimited: Bool
    }

    static func responseFramer(_ stream: UnsafeRawBufferPointer, runs: [Int], control: UInt8) {
        let isHead = control & 4 != 0
        let rawLimit = Int(control >> 3) * 8

        func frame(_ lengths: [Int]) -> (Decision, [UInt8], fed: Int) {
            var framer = HTTPResponseFramer(keepsRaw: true, rawLimit: rawLimit)
            framer.reset(requestMethodIsHead: isHead)
            var offset = 0
            var complete = false
            var failed = false
            for length in lengths {
                do {
                    complete = try framer.feed(UnsafeRawBufferPointer(rebasing: stream[offset..<(offset + length)]))
                } catch {
                    failed = true
                }
                offset += length
                if complete || failed { break }
            }
            invariant(complete == framer.isComplete || failed, "feed's answer and isComplete disagree")
            let decision = Decision(
                complete: complete, failed: failed, status: framer.statusCode,
                closes: framer.closesConnection, closeDelimited: framer.isCloseDelimited)
            return (decision, framer.raw, offset)
        }

        let (whole, wholeRaw, wholeFed) = frame(stream.isEmpty ? [] : [stream.count])
        let (pieces, piecesRaw, piecesFed) = frame(runs)
        invariant(whole == pieces, "response framed as \(whole) whole but \(pieces) in runs")
        for (raw, fed) in [(wholeRaw, wholeFed), (piecesRaw, piecesFed)] {
            invariant(raw.count <= rawLimit, "kept \(raw.count) raw bytes over the limit \(rawLimit)")
            invariant(raw.count == min(rawLimit, fed), "kept \(raw.count) raw bytes of \(fed) fed, limit \(rawLimit)")
            invariant(raw.elementsEqual(stream.prefix(raw.count)), "raw bytes are not what was fed")
        }
    }
}
