import Foundation
import SSHTransport
import Synchronization

/// Keeps the last complete stderr line of a host's task for the summary.
final class StderrTail: Sendable {
    private let state = Mutex<(partial: [UInt8], last: String?)>(([], nil))

    func append(_ bytes: [UInt8]) {
        state.withLock { s in
            s.partial += bytes
            while let newline = s.partial.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: s.partial[..<newline], as: UTF8.self)
                    .trimmingCharacters(in: .whitespaces)
                if !line.isEmpty { s.last = line }
                s.partial.removeSubrange(...newline)
            }
            if s.partial.count > 4096 { s.partial.removeFirst(s.partial.count - 4096) }
        }
    }

    var lastLine: String? {
        state.withLock { s in
            let partial = String(decoding: s.partial, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            return partial.isEmpty ? s.last : partial
        }
    }
}

/// Keeps the first `limit` bytes of each stream of one command, so a command's result holds what a
/// task parses while a flood streams past without growing memory.
final class BoundedOutput: Sendable {
    let limit: Int
    private let state = Mutex<(out: [UInt8], err: [UInt8], outPassed: Bool, errPassed: Bool)>(([], [], false, false))

    init(limit: Int) { self.limit = max(0, limit) }

    func append(_ chunk: OutputChunk) {
        state.withLock { s in
            if chunk.stream == .stdout {
                let room = limit - s.out.count
                if chunk.bytes.count > room { s.outPassed = true }
                if room > 0 { s.out += chunk.bytes.prefix(room) }
            } else {
                let room = limit - s.err.count
                if chunk.bytes.count > room { s.errPassed = true }
                if room > 0 { s.err += chunk.bytes.prefix(room) }
            }
        }
    }

    /// What was kept, and whether either stream passed the limit.
    var contents: (stdout: [UInt8], stderr: [UInt8], passedLimit: Bool) {
        state.withLock { ($0.out, $0.err, $0.outPassed || $0.errPassed) }
    }
}
