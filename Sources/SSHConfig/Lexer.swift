/// One non-comment line of an ssh_config file, split into a keyword and its arguments.
struct ConfigLine: Sendable {
    /// The keyword, lowercased (keywords are case-insensitive, arguments are not).
    var keyword: String
    /// The keyword as written, for messages.
    var spelling: String
    var arguments: [String]
    var location: SSHConfigLocation
}

enum Lexer {
    /// Splits one line the way ssh_config(5) describes: `Keyword value` or `Keyword=value`,
    /// double- or single-quoted arguments, and `#` starting a comment outside quotes.
    /// Returns `nil` for blank and comment lines.
    static func lex(_ raw: Substring, at location: SSHConfigLocation) throws(SSHConfigError) -> ConfigLine? {
        let chars = Array(raw)
        var i = 0
        func isSpace(_ c: Character) -> Bool { c == " " || c == "\t" || c == "\r" || c == "\n" || c == "\r\n" }
        while i < chars.count, isSpace(chars[i]) { i += 1 }
        if i == chars.count || chars[i] == "#" { return nil }

        var keyword = ""
        while i < chars.count, !isSpace(chars[i]), chars[i] != "=" {
            keyword.append(chars[i])
            i += 1
        }
        if keyword.isEmpty {
            throw .syntax(location, message: "line starts with '=' and has no keyword")
        }
        while i < chars.count, isSpace(chars[i]) { i += 1 }
        if i < chars.count, chars[i] == "=" {
            i += 1
        }

        var arguments: [String] = []
        while true {
            while i < chars.count, isSpace(chars[i]) { i += 1 }
            if i == chars.count || chars[i] == "#" { break }
            var argument = ""
            var quote: Character?
            while i < chars.count {
                let c = chars[i]
                if let open = quote {
                    if c == "\\", i + 1 < chars.count, chars[i + 1] == open || chars[i + 1] == "\\" {
                        argument.append(chars[i + 1])
                        i += 2
                        continue
                    }
                    if c == open {
                        quote = nil
                    } else {
                        argument.append(c)
                    }
                } else if c == "\"" || c == "'" {
                    quote = c
                } else if isSpace(c) {
                    break
                } else {
                    argument.append(c)
                }
                i += 1
            }
            if quote != nil {
                throw .syntax(location, message: "unbalanced quotes")
            }
            arguments.append(argument)
        }
        return ConfigLine(keyword: keyword.lowercased(), spelling: keyword, arguments: arguments, location: location)
    }
}
