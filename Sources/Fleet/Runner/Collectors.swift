import Synchronization
import SSHTransport

/// Gathers a command's output; the SSH callback may run on any thread.
final class ResultCollector: Sendable {
    private let state = Mutex<([UInt8], [UInt8])>(([], []))

    func append(_ chunk: OutputChunk) {
        state.withLock { s in
            if chunk.stream == .stdout { s.0 += chunk.bytes } else { s.1 += chunk.bytes }
        }
    }

    var contents: ([UInt8], [UInt8]) { state.withLock { $0 } }
}

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

import Foundation
