/// Refuses YAML nested deeper than any inventory or playbook needs, before Yams sees it.
///
/// Yams composes nodes recursively, so a 10 KB file of `[[[[…` (about 4,700 levels) overflows
/// the stack and kills the process: one such playbook would break every command. This scan is a
/// cheap upper bound on the depth: open block indentation levels, plus the `- `, `? ` and `: `
/// indicators on the line, plus open flow brackets. A quote starts a quoted scalar only where a
/// node starts (as in YAML), so brackets inside quoted text are skipped and brackets inside plain
/// text are over-counted, never under-counted.
public enum YAMLNestingLimit {
    /// Far beyond what a real file uses (inventories and playbooks nest fewer than 10 levels).
    public static let maximumDepth = 100

    /// Where the bound first passes the limit (1-based).
    public struct Violation: Sendable, Equatable {
        public var line: Int
        public var column: Int
    }

    /// The first place `text` may nest deeper than `limit`, or nil.
    public static func firstViolation(in text: String, limit: Int = maximumDepth) -> Violation? {
        let space = UInt8(ascii: " ")
        let tab = UInt8(ascii: "\t")
        var indents: [Int] = []
        var flowDepth = 0
        var quote: UInt8? = nil
        var quoteLineIndent = 0
        var escaped = false
        var inProperty = false
        var blockScalarIndent: Int? = nil
        for (lineIndex, lineBytes) in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .enumerated()
        {
            let indent = lineBytes.prefix { $0 == space }.count
            // A literal or folded block scalar's lines are text, whatever brackets they hold.
            if let scalarIndent = blockScalarIndent {
                if lineBytes.count == indent || indent > scalarIndent { continue }
                blockScalarIndent = nil
            }
            // In block context a quoted scalar's next lines are indented deeper than its own line;
            // a line that is not cannot still be inside it.
            if quote != nil, flowDepth == 0, indent <= quoteLineIndent { quote = nil }
            let content = lineBytes.dropFirst(indent)
            if quote == nil, flowDepth == 0, let first = content.first, first != UInt8(ascii: "#"),
                first != UInt8(ascii: "\r")
            {
                while let last = indents.last, last >= indent { indents.removeLast() }
                indents.append(indent)
            }
            var indicators = 0
            // True where a node may start: a quote there opens a quoted scalar.
            var atNodeStart = quote == nil
            var previous = space
            inProperty = false
            var column = indent
            let bytes = Array(content)
            var index = 0
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                column += 1
                if let open = quote {
                    if escaped {
                        escaped = false
                    } else if open == UInt8(ascii: "\""), byte == UInt8(ascii: "\\") {
                        escaped = true
                    } else if byte == open {
                        // In single quotes, '' is a quote character, not the end.
                        if open == UInt8(ascii: "'"), index < bytes.count, bytes[index] == open {
                            index += 1
                            column += 1
                        } else {
                            quote = nil
                            atNodeStart = false
                        }
                    }
                    previous = byte
                    continue
                }
                switch byte {
                case UInt8(ascii: "#") where previous == space || previous == tab:
                    break
                case UInt8(ascii: "\"") where atNodeStart, UInt8(ascii: "'") where atNodeStart:
                    quote = byte
                    quoteLineIndent = indent
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    flowDepth += 1
                    atNodeStart = true
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    flowDepth = max(0, flowDepth - 1)
                    atNodeStart = false
                case UInt8(ascii: ","):
                    atNodeStart = flowDepth > 0 || atNodeStart
                case space, tab:
                    if inProperty {
                        inProperty = false
                    } // an anchor or tag: the node starts after it
                    else if previous == UInt8(ascii: "-") || previous == UInt8(ascii: "?")
                        || previous == UInt8(ascii: ":")
                    {
                        indicators += 1
                        atNodeStart = true
                    }
                case UInt8(ascii: "&") where atNodeStart, UInt8(ascii: "!") where atNodeStart:
                    inProperty = true
                default:
                    if !inProperty { atNodeStart = false }
                }
                if byte == UInt8(ascii: "#"), previous == space || previous == tab { break }
                if indents.count + indicators + flowDepth > limit {
                    return Violation(line: lineIndex + 1, column: column)
                }
                previous = byte
            }
            if quote == nil, flowDepth == 0, startsBlockScalar(bytes) { blockScalarIndent = indent }
        }
        return nil
    }

    /// True when a line ends with a block scalar header (`|`, `>`, with `-`, `+` or a digit).
    private static func startsBlockScalar(_ line: [UInt8]) -> Bool {
        var end = line.count
        if let hash = line.indices.first(where: {
            line[$0] == UInt8(ascii: "#") && $0 > 0 && line[$0 - 1] == UInt8(ascii: " ")
        }) {
            end = hash
        }
        var text = line[..<end]
        while let last = text.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\r") { text.removeLast() }
        while let last = text.last, last == UInt8(ascii: "-") || last == UInt8(ascii: "+") || (48...57).contains(last) {
            text.removeLast()
        }
        guard let header = text.last, header == UInt8(ascii: "|") || header == UInt8(ascii: ">") else { return false }
        text.removeLast()
        guard let before = text.last else { return true }
        return before == UInt8(ascii: " ") || before == UInt8(ascii: "\t")
    }
}
