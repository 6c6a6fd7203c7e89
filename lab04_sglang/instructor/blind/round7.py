"""Blind round 7 for lab04_sglang: plausible mistakes written from the README, docstrings and solution only (reviewer had not read the tests)."""

MUTANTS = [
    # ---------------------------------------------------------------- task 1: regex parser
    {"task": 1, "file": "grammar.py",
     "find": "                raise self.error(\"an anchor '$' inside the pattern (only at its end)\")",
     "replace": "                self.pos += 1\n                items.append(literal(\"$\"))\n                continue",
     "why": "a '$' inside the pattern read as a literal dollar (as in a character class) instead of refused as a multi-line anchor",
     "check": ">>> from lab04_sglang.solution.grammar import compile_regex, GrammarError\n"
              ">>> try:\n...     compile_regex('a$b'); raise AssertionError('accepted')\n... except GrammarError:\n...     pass"},
    {"task": 1, "file": "grammar.py",
     "find": "        if self.peek() == \"?\":\n            self.pos += 1  # lazy: the same set of full matches\n",
     "replace": "",
     "why": "lazy quantifiers (*?, +?, ??, {n,m}?) not supported: the '?' after a quantifier is taken as a second quantifier and refused",
     "check": ">>> from lab04_sglang.solution.grammar import compile_regex\n>>> assert compile_regex('a*?b').matches('aab')"},
    {"task": 1, "file": "grammar.py",
     "find": "            if max(low, high or 0) > MAX_REPEAT:\n                raise self.error(",
     "replace": "            if (high or 0) > MAX_REPEAT:\n                raise self.error(",
     "why": "only the maximum of a bound checked against MAX_REPEAT: an open bound {1001,} with a huge minimum slips through",
     "check": ">>> from lab04_sglang.solution.grammar import parse_regex, GrammarError\n"
              ">>> try:\n...     parse_regex('a{1001,}'); raise AssertionError('accepted')\n... except GrammarError:\n...     pass"},
    {"task": 1, "file": "grammar.py",
     "find": "            return codepoints(complement([(0x0A, 0x0A)]))",
     "replace": "            return codepoints([(0, MAX_CODEPOINT)])",
     "why": "'.' matches any character including a newline (DOTALL), while re without flags excludes '\\n'",
     "check": ">>> from lab04_sglang.solution.grammar import compile_regex\n>>> assert not compile_regex('a.b').matches('a\\nb')"},
    # ---------------------------------------------------------------- task 1: NFA / DFA
    {"task": 1, "file": "grammar.py",
     "find": "        for _ in range(node.high - node.low):\n            self.epsilons[start].append(end)\n            start = self._build(node.item, start)",
     "replace": "        self.epsilons[start].append(end)\n        for _ in range(node.high - node.low):\n            start = self._build(node.item, start)",
     "why": "a bounded repeat's optional copies made skippable only all together (one epsilon before them), so {0,3} means 0 or 3, not 0..3",
     "check": ">>> from lab04_sglang.solution.grammar import compile_regex\n>>> assert compile_regex('a{0,3}').matches('aa')"},
    {"task": 1, "file": "grammar.py",
     "find": "cache[key] = self._intern(self._closure(byte_targets)) if byte_targets else self.DEAD",
     "replace": "cache[key] = self._intern(self._closure(byte_targets))",
     "why": "the empty set of NFA states interned as an ordinary DFA state instead of DEAD, so step never reports DEAD",
     "check": ">>> from lab04_sglang.solution.grammar import compile_regex\n>>> a = compile_regex('a')\n>>> assert a.step(a.start, ord('b')) == a.DEAD"},
    # ---------------------------------------------------------------- task 1: JSON Schema
    {"task": 1, "file": "grammar.py",
     "find": "            return literal(json_text(schema[\"const\"]))",
     "replace": "            return literal(json.dumps(schema[\"const\"]))",
     "why": "const written with json.dumps' default ensure_ascii=True: a non-ASCII const must be written as \\u escapes, not as json.dumps(ensure_ascii=False) text",
     "check": ">>> from lab04_sglang.solution.grammar import compile_json_schema\n>>> assert compile_json_schema({'const': 'caf\u00e9'}).matches('\"caf\u00e9\"')"},
    {"task": 1, "file": "grammar.py",
     "find": "            return Alt(tuple(self.node({**schema, \"type\": k}, where) for k in kind))",
     "replace": "            return self.node({**schema, \"type\": kind[0]}, where)",
     "why": "a list of types (['integer', 'null'], pydantic's Optional) compiled as its first type only",
     "check": ">>> from lab04_sglang.solution.grammar import compile_json_schema\n>>> assert compile_json_schema({'type': ['integer', 'null']}).matches('null')"},
    {"task": 1, "file": "grammar.py",
     "find": "        if schema.get(\"additionalProperties\", False) is not False:",
     "replace": "        if schema.get(\"additionalProperties\", False) is True:",
     "why": "only additionalProperties: true refused; a schema for additional properties ({'type': 'string'}) silently ignored",
     "check": ">>> from lab04_sglang.solution.grammar import compile_json_schema, GrammarError\n"
              ">>> try:\n...     compile_json_schema({'type': 'object', 'properties': {}, 'additionalProperties': {'type': 'string'}}); raise AssertionError('accepted')\n"
              "... except GrammarError:\n...     pass"},
    {"task": 1, "file": "grammar.py",
     "find": "            if keyword in CONSTRAINING and keyword not in SUPPORTED:",
     "replace": "            if keyword not in SUPPORTED:",
     "why": "every keyword outside SUPPORTED refused, annotations (title, description) included, though they only describe",
     "check": ">>> from lab04_sglang.solution.grammar import compile_json_schema\n>>> assert compile_json_schema({'type': 'integer', 'title': 'Age', 'description': 'years'}).matches('7')"},
    {"task": 1, "file": "grammar.py",
     "find": "        if ref in self.resolving:\n",
     "replace": "        if False:\n",
     "why": "no recursion check on $ref: a recursive schema only fails by Python's recursion limit, with a message that does not say it is recursive",
     "check": ">>> from lab04_sglang.solution.grammar import compile_json_schema, GrammarError\n"
              ">>> s = {'$defs': {'n': {'type': 'object', 'properties': {'next': {'$ref': '#/$defs/n'}}}}, '$ref': '#/$defs/n'}\n"
              ">>> try:\n...     compile_json_schema(s); raise AssertionError('accepted')\n... except GrammarError as e:\n...     assert 'recursive' in str(e), str(e)[:80]"},
    {"task": 1, "file": "grammar.py",
     "find": "        else:\n            options.append(EMPTY)  # no required member: '{}' too",
     "replace": "",
     "why": "the empty object forgotten when no property is required",
     "check": ">>> from lab04_sglang.solution.grammar import compile_json_schema\n>>> assert compile_json_schema({'type': 'object', 'properties': {'a': {'type': 'integer'}}}).matches('{}')"},
    {"task": 1, "file": "grammar.py",
     "find": "            if needed:\n                break\n",
     "replace": "",
     "why": "any member may come first, even one after a required member: the required property can be left out",
     "check": ">>> from lab04_sglang.solution.grammar import compile_json_schema\n"
              ">>> s = {'type': 'object', 'properties': {'a': {'type': 'integer'}, 'b': {'type': 'integer'}}, 'required': ['a']}\n"
              ">>> assert not compile_json_schema(s).matches('{\"b\": 1}')"},
    {"task": 1, "file": "grammar.py",
     "find": "        more = Repeat(seq(literal(ITEM_SEPARATOR), item), max(low - 1, 0), None if high is None else high - 1)",
     "replace": "        more = Repeat(seq(literal(ITEM_SEPARATOR), item), max(low - 1, 0), high)",
     "why": "off by one: maxItems bounds the items after the first, so one item more than maxItems is allowed",
     "check": ">>> from lab04_sglang.solution.grammar import compile_json_schema\n>>> assert not compile_json_schema({'type': 'array', 'items': {'type': 'integer'}, 'maxItems': 2}).matches('[1, 2, 3]')"},
    {"task": 1, "file": "grammar.py",
     "find": "        low, high = schema.get(\"minLength\", 0), schema.get(\"maxLength\")\n        if high is not None and high < low:",
     "replace": "        low, high = schema.get(\"minLength\", 0), schema.get(\"maxLength\")\n        if high and high < low:",
     "why": "truthiness test on maxLength: maxLength 0 below minLength 1 is not refused (and the string then needs a character)",
     "check": ">>> from lab04_sglang.solution.grammar import compile_json_schema, GrammarError\n"
              ">>> try:\n...     compile_json_schema({'type': 'string', 'minLength': 1, 'maxLength': 0}); raise AssertionError('accepted')\n"
              "... except GrammarError:\n...     pass"},
    {"task": 1, "file": "grammar.py",
     "find": "        if high == 0:\n            return literal(\"[]\")\n",
     "replace": "",
     "why": "maxItems 0 not special-cased: high - 1 = -1 copies still leaves the first item, so [1] passes where only [] is valid",
     "check": ">>> from lab04_sglang.solution.grammar import compile_json_schema\n>>> assert not compile_json_schema({'type': 'array', 'items': {'type': 'integer'}, 'maxItems': 0}).matches('[1]')"},
    # ---------------------------------------------------------------- task 2
    {"task": 2, "file": "masks.py",
     "find": "        elif match := BYTE_FALLBACK.match(piece):\n            data = bytes([int(match.group(1), 16)])\n",
     "replace": "",
     "why": "SentencePiece byte-fallback pieces (<0x0A>) taken as their six characters of text instead of the one byte they stand for",
     "check": ">>> from transformers import AutoTokenizer\n>>> from shared.models import fixture_path\n>>> from lab04_sglang.solution.masks import token_bytes\n"
              ">>> import glob\n>>> tok = AutoTokenizer.from_pretrained(glob.glob(str(fixture_path().parent / 'convention-spm-byte-fallback-*'))[0])\n"
              ">>> assert token_bytes(tok)[tok.convert_tokens_to_ids('<0x0A>')] == b'\\n'"},
    {"task": 2, "file": "masks.py",
     "find": "    size = len(tokenizer) if vocab_size is None else vocab_size",
     "replace": "    size = len(tokenizer)",
     "why": "vocab_size ignored: the list has len(tokenizer) entries, not one per logit when the model's vocabulary is padded",
     "check": ">>> from transformers import AutoTokenizer\n>>> from shared.models import fixture_path\n>>> from lab04_sglang.solution.masks import token_bytes\n"
              ">>> tok = AutoTokenizer.from_pretrained(fixture_path())\n>>> pieces = token_bytes(tok, len(tok) + 8)\n>>> assert len(pieces) == len(tok) + 8 and pieces[-1] is None"},
    {"task": 2, "file": "masks.py",
     "find": "                if after == dead:\n                    continue  # every token below this byte is refused: skip the subtree",
     "replace": "                if after == dead:\n                    break  # every token below this byte is refused: skip the subtree",
     "why": "a refused byte stops the walk over all its siblings (break) instead of skipping only its own subtree",
     "check": ">>> from transformers import AutoTokenizer\n>>> from shared.models import fixture_path\n>>> from lab04_sglang.solution.masks import Vocabulary, TokenMasker\n>>> from lab04_sglang.solution.grammar import compile_regex\n"
              ">>> tok = AutoTokenizer.from_pretrained(fixture_path())\n>>> m = TokenMasker(compile_regex('[a-z]'), Vocabulary(tok))\n"
              ">>> allowed = set(m.next_states(m.automaton.start))\n>>> assert all(tok.convert_tokens_to_ids(c) in allowed for c in 'abcxyz'), sorted(allowed)[:5]"},
    {"task": 2, "file": "masks.py",
     "find": "        if token_id in self.vocabulary.eos_ids and state != self.FINISHED \\\n                and self.automaton.is_accepting(state):",
     "replace": "        if token_id in self.vocabulary.eos_ids and state != self.FINISHED:",
     "why": "advance accepts eos in any state (FINISHED) instead of raising ValueError where the text is incomplete",
     "check": ">>> from transformers import AutoTokenizer\n>>> from shared.models import fixture_path\n>>> from lab04_sglang.solution.masks import Vocabulary, TokenMasker\n>>> from lab04_sglang.solution.grammar import compile_regex\n"
              ">>> tok = AutoTokenizer.from_pretrained(fixture_path())\n>>> m = TokenMasker(compile_regex('ab'), Vocabulary(tok))\n"
              ">>> try:\n...     m.advance(m.automaton.start, tok.eos_token_id); raise AssertionError('accepted')\n... except ValueError:\n...     pass"},
    {"task": 2, "file": "masks.py",
     "find": "        new_tokens = input_ids[:, self.prompt_length + self.consumed:].tolist()",
     "replace": "        new_tokens = input_ids[:, self.prompt_length:].tolist()",
     "why": "every call re-advances the row's state by all generated tokens, not only those since the last call (state advanced twice)",
     "check": ">>> import torch\n>>> from transformers import AutoTokenizer\n>>> from shared.models import fixture_path\n>>> from lab04_sglang.solution.masks import Vocabulary, TokenMasker, ConstrainedLogitsProcessor\n>>> from lab04_sglang.solution.grammar import compile_regex\n"
              ">>> tok = AutoTokenizer.from_pretrained(fixture_path())\n>>> m = TokenMasker(compile_regex('aaab'), Vocabulary(tok))\n>>> a = tok.convert_tokens_to_ids('a')\n"
              ">>> p = ConstrainedLogitsProcessor(m, 1)\n>>> _ = p(torch.tensor([[1]]), torch.zeros(1, m.vocabulary.size))\n>>> _ = p(torch.tensor([[1, a]]), torch.zeros(1, m.vocabulary.size))\n"
              ">>> out = p(torch.tensor([[1, a, a]]), torch.zeros(1, m.vocabulary.size))\n>>> assert p.states[0] == m.walk([a, a]) and out[0, a] == 0"},
    # ---------------------------------------------------------------- task 3
    {"task": 3, "file": "xgrammar_check.py",
     "find": "    info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)",
     "replace": "    info = xgrammar.TokenizerInfo.from_huggingface(tokenizer)",
     "why": "the model's logits width not passed to TokenizerInfo: xgrammar then sizes its vocabulary by the tokenizer, not the logits",
     "check": ">>> from transformers import AutoTokenizer\n>>> from shared.models import fixture_path\n>>> from lab04_sglang.solution.xgrammar_check import xgrammar_compiled\n"
              ">>> tok = AutoTokenizer.from_pretrained(fixture_path())\n>>> c = xgrammar_compiled(tok, len(tok) + 64, regex='a')\n>>> assert c.tokenizer_info.vocab_size == len(tok) + 64"},
    {"task": 3, "file": "xgrammar_check.py",
     "find": "    return {int(i) for i in ids if i < vocab_size}",
     "replace": "    return {int(i) for i in ids}",
     "why": "the padding bits of the last int32 word past vocab_size are reported as token ids",
     "check": ">>> import torch\n>>> from lab04_sglang.solution.xgrammar_check import bitmask_to_set\n>>> assert bitmask_to_set(torch.full((1, 2), -1, dtype=torch.int32), 40) == set(range(40))"},
    {"task": 3, "file": "xgrammar_check.py",
     "find": "        if not matcher.accept_token(token_id):\n            return steps",
     "replace": "        matcher.accept_token(token_id)",
     "why": "a token xgrammar refuses is ignored and the walk goes on, instead of ending the list at the step where it was refused",
     "check": ">>> from transformers import AutoTokenizer\n>>> from shared.models import fixture_path\n>>> from lab04_sglang.solution.xgrammar_check import xgrammar_compiled, xgrammar_allowed\n"
              ">>> tok = AutoTokenizer.from_pretrained(fixture_path())\n>>> c = xgrammar_compiled(tok, len(tok), regex='ab')\n>>> b = tok.convert_tokens_to_ids('b')\n"
              ">>> assert len(xgrammar_allowed(c, [b, b], len(tok))) == 1"},
    {"task": 3, "file": "xgrammar_check.py",
     "find": "    if data[:1] in (b\" \", b\"\\t\", b\"\\n\", b\"\\r\") or text_so_far.endswith((b\":\", b\",\")):",
     "replace": "    if data[:1] == b\" \" or text_so_far.endswith((b\":\", b\",\")):",
     "why": "only a space counts as JSON whitespace: a newline or tab token allowed between JSON tokens by any_whitespace is 'unexplained'",
     "check": ">>> from types import SimpleNamespace\n>>> from lab04_sglang.solution.xgrammar_check import explain, WHITESPACE\n"
              ">>> assert explain(0, SimpleNamespace(pieces=[b'\\n  ']), set(), b'{\"a\": 1') == WHITESPACE"},
    # ---------------------------------------------------------------- task 4: radix tree
    {"task": 4, "file": "radix.py",
     "find": "        head.lock_ref, head.last_access = child.lock_ref, child.last_access",
     "replace": "        head.last_access = child.last_access",
     "why": "the new first part of a split node starts unlocked: a request holding the old node loses the protection of its prefix",
     "check": ">>> import torch\n>>> from lab04_sglang.solution.radix import RadixCache\n>>> r = RadixCache()\n>>> _ = r.insert([1, 2, 3, 4], torch.arange(4))\n"
              ">>> _, node = r.match_prefix([1, 2, 3, 4])\n>>> r.inc_lock_ref(node)\n>>> _ = r.match_prefix([1, 2, 9])\n"
              ">>> assert r.protected_size() == 4 and r.evictable_size() == 0\n>>> r.dec_lock_ref(node)\n>>> assert r.evictable_size() == 4"},
    {"task": 4, "file": "radix.py",
     "find": "                child = self._split(child, length)\n            child.last_access = now\n            values.append(child.value)",
     "replace": "                child = self._split(child, length)\n            values.append(child.value)",
     "why": "match_prefix does not mark the matched path as used, so a just-reused prefix is evicted first (LRU by insertion time)",
     "check": ">>> import torch\n>>> from lab04_sglang.solution.radix import RadixCache\n>>> r = RadixCache()\n>>> _ = r.insert([1, 2], torch.arange(2))\n>>> _ = r.insert([3, 4], torch.arange(2))\n"
              ">>> _ = r.match_prefix([1, 2])\n>>> _ = r.evict(1)\n>>> v, _ = r.match_prefix([1, 2])\n>>> assert v is not None and len(v) == 2"},
    {"task": 4, "file": "radix.py",
     "find": "            leaf = TreeNode(key, value[matched:], node)",
     "replace": "            leaf = TreeNode(key, value, node)",
     "why": "the new leaf stores the whole value instead of the rows of the uncached remainder",
     "check": ">>> import torch\n>>> from lab04_sglang.solution.radix import RadixCache\n>>> r = RadixCache()\n>>> _ = r.insert([1, 2], torch.tensor([10, 20]))\n"
              ">>> _ = r.insert([1, 2, 3], torch.tensor([10, 20, 30]))\n>>> assert r.match_prefix([1, 2, 3])[0].tolist() == [10, 20, 30]"},
    {"task": 4, "file": "radix.py",
     "find": "            if node.lock_ref == 0:\n                self._evictable -= len(node.key)\n                self._protected += len(node.key)",
     "replace": "            self._evictable -= len(node.key)\n            self._protected += len(node.key)",
     "why": "sizes moved from evictable to protected on every lock, not only the first: two requests on one prefix count it twice",
     "check": ">>> import torch\n>>> from lab04_sglang.solution.radix import RadixCache\n>>> r = RadixCache()\n>>> _ = r.insert([1, 2, 3], torch.arange(3))\n>>> _, n = r.match_prefix([1, 2, 3])\n"
              ">>> r.inc_lock_ref(n); r.inc_lock_ref(n)\n>>> assert (r.protected_size(), r.evictable_size()) == (3, 0)"},
    {"task": 4, "file": "radix.py",
     "find": "            if node.lock_ref <= 0:\n                raise RuntimeError(\"dec_lock_ref on a node that is not locked\")\n",
     "replace": "",
     "why": "an extra dec_lock_ref silently drives lock counts negative instead of raising RuntimeError",
     "check": ">>> import torch\n>>> from lab04_sglang.solution.radix import RadixCache\n>>> r = RadixCache()\n>>> _ = r.insert([1, 2], torch.arange(2))\n>>> _, n = r.match_prefix([1, 2])\n"
              ">>> try:\n...     r.dec_lock_ref(n); raise AssertionError('accepted')\n... except RuntimeError:\n...     pass"},
    {"task": 4, "file": "radix.py",
     "find": "            if parent is not self.root and not parent.children and parent.lock_ref == 0:\n                heapq.heappush(leaves, parent)",
     "replace": "            pass",
     "why": "only the leaves present at the start are candidates: a parent left childless is never evicted in the same call",
     "check": ">>> import torch\n>>> from lab04_sglang.solution.radix import RadixCache\n>>> r = RadixCache()\n>>> _ = r.insert([1, 2, 3], torch.arange(3))\n>>> _ = r.insert([1, 2, 4], torch.arange(3))\n"
              ">>> assert r.evict(100) == 4 and r.total_size() == 0"},
    # ---------------------------------------------------------------- task 4: prefix caching generator
    {"task": 4, "file": "prefix_cache.py",
     "find": "        value, node = self.radix.match_prefix(ids[:reusable]) if self.use_cache else (None, self.radix.root)",
     "replace": "        value, node = self.radix.match_prefix(ids) if self.use_cache else (None, self.radix.root)",
     "why": "the whole prompt matched instead of ids[:reusable]: a prompt fully in the tree leaves no position to compute logits from",
     "check": ">>> import torch\n>>> from transformers import AutoModelForCausalLM\n>>> from shared.models import fixture_path\n>>> from lab04_sglang.solution.prefix_cache import PrefixCachingGenerator\n"
              ">>> g = PrefixCachingGenerator(AutoModelForCausalLM.from_pretrained(fixture_path(), dtype=torch.float32).eval())\n"
              ">>> a = g.generate([1, 70, 71, 72], 3, eos_token_id=[])\n>>> b = g.generate([1, 70, 71, 72], 3, eos_token_id=[])\n"
              ">>> assert a.token_ids == b.token_ids and b.cached_tokens == 3"},
    # ---------------------------------------------------------------- task 5
    {"task": 5, "file": "program.py",
     "find": "        self._text += self.backend.roles[role][0]\n        self._role = (role, len(self._text))",
     "replace": "        self._role = (role, len(self._text))\n        self._text += self.backend.roles[role][0]",
     "why": "the content start recorded before the role's opening marker, so the message content includes the template text",
     "check": ">>> from types import SimpleNamespace\n>>> from lab04_sglang.solution.program import ProgramState\n"
              ">>> s = ProgramState(SimpleNamespace(roles={'user': ('<u>', '</u>')}), {})\n>>> s += 'x'\n>>> s.role_begin('user'); s += 'hi'; s.role_end('user')\n"
              ">>> assert s.messages() == [{'role': 'user', 'content': 'hi'}] and s.text() == 'x<u>hi</u>'"},
    {"task": 5, "file": "program.py",
     "find": "        cuts = [text.find(stop) for stop in call.stop if stop in text]\n        if cuts:\n            text = text[:min(cuts)]",
     "replace": "        cuts = [text.find(stop) for stop in call.stop if stop in text]\n        if cuts:\n            text = text[:cuts[0]]",
     "why": "the text cut at the first listed stop string found, not at the earliest stop string in the text",
     "check": ">>> from types import SimpleNamespace\n>>> from lab04_sglang.solution.program import ProgramState, gen\n"
              ">>> out = SimpleNamespace(token_ids=[5, 6], cached_tokens=0)\n"
              ">>> b = SimpleNamespace(encode=lambda t: [1], masker=None, engine=SimpleNamespace(generate=lambda *a, **k: out), tokenizer=SimpleNamespace(decode=lambda ids, **k: 'xx END yy STOP zz'))\n"
              ">>> s = ProgramState(b, {'max_new_tokens': 8, 'temperature': 0.0})\n>>> s += gen('v', stop=['STOP', 'END'])\n>>> assert s['v'] == 'xx '"},
    {"task": 5, "file": "program.py",
     "find": "        temperature = self.defaults[\"temperature\"] if call.temperature is None else call.temperature",
     "replace": "        temperature = call.temperature or self.defaults[\"temperature\"]",
     "why": "gen(temperature=0) falls back to the run's default temperature (1.0): greedy asked for, sampling done",
     "check": ">>> from types import SimpleNamespace\n>>> from lab04_sglang.solution.program import ProgramState, gen\n>>> seen = {}\n"
              ">>> def fake(ids, n, **k):\n...     seen.update(k)\n...     return SimpleNamespace(token_ids=[5], cached_tokens=0)\n"
              ">>> b = SimpleNamespace(encode=lambda t: [1], engine=SimpleNamespace(generate=fake), tokenizer=SimpleNamespace(decode=lambda ids, **k: 'x'))\n"
              ">>> s = ProgramState(b, {'max_new_tokens': 8, 'temperature': 1.0})\n>>> s += gen('v', temperature=0)\n>>> assert seen['temperature'] == 0"},
    {"task": 5, "file": "program.py",
     "find": "            normalized.append(sum(logprobs) / len(logprobs))",
     "replace": "            normalized.append(sum(logprobs) / len(choice))",
     "why": "token_length_normalized divides by the choice's characters instead of its tokens",
     "check": ">>> from types import SimpleNamespace\n>>> from lab04_sglang.solution.program import ProgramState, select\n"
              ">>> tk = lambda text, add_special_tokens=True: SimpleNamespace(input_ids=[7])\n"
              ">>> b = SimpleNamespace(encode=lambda t: [1], tokenizer=tk, engine=SimpleNamespace(logprobs=lambda p, ids: [-2.0] * len(ids)))\n"
              ">>> s = ProgramState(b, {})\n>>> s += select('c', ['abcd', 'xy'])\n>>> assert s.get_meta_info('c')['normalized_prompt_logprobs'] == [-2.0, -2.0]"},
    # ---------------------------------------------------------------- task 6
    {"task": 6, "file": "sglang_api.py",
     "find": "\"top_k\": self.top_k not in (None, -1, 0)",
     "replace": "\"top_k\": self.top_k not in (None, -1)",
     "why": "only SGLang's -1 accepted as 'top_k off'; 0 (transformers' and OpenAI-style off) refused",
     "check": ">>> from lab04_sglang.solution.sglang_api import SamplingParams\n>>> assert SamplingParams(top_k=0).top_k == 0"},
    {"task": 6, "file": "sglang_api.py",
     "find": "\"top_p\": self.top_p not in (None, 1.0)",
     "replace": "\"top_p\": self.top_p is not None",
     "why": "top_p refused whenever it is sent, though top_p = 1.0 (no filtering, what clients send by default) changes nothing",
     "check": ">>> from lab04_sglang.solution.sglang_api import SamplingParams\n>>> assert SamplingParams(top_p=1.0).top_p == 1.0"},
    {"task": 6, "file": "sglang_api.py",
     "find": "per_prompt(\"logprob_start_len\", -1)",
     "replace": "per_prompt(\"logprob_start_len\", 0)",
     "why": "logprob_start_len defaults to 0 (the whole prompt scored) instead of SGLang's -1 (no prompt token)",
     "check": ">>> from lab04_sglang.solution.sglang_api import GenerateRequest\n>>> assert GenerateRequest(text='hi', return_logprob=True).split()[0][3] == -1"},
    {"task": 6, "file": "sglang_api.py",
     "find": "    max_new = 128 if params.max_new_tokens is None else params.max_new_tokens",
     "replace": "    max_new = params.max_new_tokens or 128",
     "why": "max_new_tokens: 0 (select's prefill-only request) falls back to 128 new tokens",
     "check": ">>> import torch\n>>> from transformers import AutoModelForCausalLM, AutoTokenizer\n>>> from shared.models import fixture_path\n>>> from lab04_sglang.solution.program import LocalBackend\n>>> from lab04_sglang.solution.sglang_api import generate_one, SamplingParams\n"
              ">>> be = LocalBackend(AutoModelForCausalLM.from_pretrained(fixture_path(), dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(fixture_path()))\n"
              ">>> r = generate_one(be, 'The cat', SamplingParams(max_new_tokens=0))\n>>> assert r.output_ids == [] and r.meta_info.finish_reason == {'type': 'length', 'length': 0}"},
    {"task": 6, "file": "sglang_api.py",
     "find": "        first = max(start, 1)  # the first prompt token has no logprob: nothing came before it",
     "replace": "        first = start",
     "why": "logprob_start_len 0 asks for a logprob of the first prompt token too (it has none: SGLang gives None)",
     "check": ">>> import torch\n>>> from transformers import AutoModelForCausalLM, AutoTokenizer\n>>> from shared.models import fixture_path\n>>> from lab04_sglang.solution.program import LocalBackend\n>>> from lab04_sglang.solution.sglang_api import generate_one, SamplingParams\n"
              ">>> be = LocalBackend(AutoModelForCausalLM.from_pretrained(fixture_path(), dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(fixture_path()))\n"
              ">>> r = generate_one(be, 'The cat', SamplingParams(max_new_tokens=2, temperature=0), return_logprob=True, logprob_start_len=0)\n"
              ">>> lp = r.meta_info.input_token_logprobs\n>>> assert lp[0][0] is None and len(lp) == r.meta_info.prompt_tokens and all(x[0] is not None for x in lp[1:])"},
    {"task": 6, "file": "sglang_server.py",
     "find": "        for name in (\"regex\", \"json_schema\"):\n            pattern = getattr(params, name)",
     "replace": "        for name in (\"regex\",):\n            pattern = getattr(params, name)",
     "why": "only the regex is compiled up front: a bad json_schema is found during generation instead of as a 400 naming sampling_params.json_schema",
     "check": ">>> from lab04_sglang.solution.sglang_server import parse_generate, BadRequest\n"
              ">>> try:\n...     parse_generate({'text': 'a', 'sampling_params': {'json_schema': '{\"type\": \"object\", \"patternProperties\": {}}'}}); raise AssertionError('accepted')\n"
              "... except BadRequest as e:\n...     assert e.param == 'sampling_params.json_schema'"},
    {"task": 6, "file": "sglang_server.py",
     "find": "max_new_tokens=body.get(\"max_completion_tokens\") or body.get(\"max_tokens\")",
     "replace": "max_new_tokens=body.get(\"max_tokens\") or body.get(\"max_completion_tokens\")",
     "why": "the deprecated max_tokens wins over OpenAI's max_completion_tokens when a request sends both",
     "check": ">>> from transformers import AutoTokenizer\n>>> from shared.models import fixture_path\n>>> from lab04_sglang.solution.sglang_server import chat_to_generate\n>>> tok = AutoTokenizer.from_pretrained(fixture_path())\n"
              ">>> body = {'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 50, 'max_completion_tokens': 7, 'response_format': {'type': 'json_schema', 'json_schema': {'schema': {'type': 'integer'}}}}\n"
              ">>> assert chat_to_generate(tok, body)[1].max_new_tokens == 7"},
    {"task": 6, "file": "sglang_server.py",
     "find": "    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)",
     "replace": "    text = tokenizer.apply_chat_template(messages, tokenize=False)",
     "why": "the chat template rendered without the generation prompt: the model is not told that the assistant's turn begins",
     "check": ">>> from transformers import AutoTokenizer\n>>> from shared.models import fixture_path\n>>> from lab04_sglang.solution.sglang_server import chat_to_generate\n>>> tok = AutoTokenizer.from_pretrained(fixture_path())\n"
              ">>> msgs = [{'role': 'user', 'content': 'hi'}]\n>>> body = {'messages': msgs, 'response_format': {'type': 'json_schema', 'json_schema': {'schema': {'type': 'integer'}}}}\n"
              ">>> want = tok(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True), add_special_tokens=False).input_ids\n"
              ">>> assert chat_to_generate(tok, body)[0] == want"},
    {"task": 6, "file": "sglang_server.py",
     "find": "    if body.get(\"n\") not in (None, 1):",
     "replace": "    if body.get(\"n\") is not None:",
     "why": "n: 1 (one choice, OpenAI's default, often sent explicitly) refused along with n > 1",
     "check": ">>> from transformers import AutoTokenizer\n>>> from shared.models import fixture_path\n>>> from lab04_sglang.solution.sglang_server import chat_to_generate\n>>> tok = AutoTokenizer.from_pretrained(fixture_path())\n"
              ">>> body = {'messages': [{'role': 'user', 'content': 'hi'}], 'n': 1, 'response_format': {'type': 'json_schema', 'json_schema': {'schema': {'type': 'integer'}}}}\n"
              ">>> assert chat_to_generate(tok, body)[1].json_schema is not None"},
]
