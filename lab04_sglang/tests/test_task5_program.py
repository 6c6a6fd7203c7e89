"""Task 5: SGLang-style programs (roles, gen, select, fork) run in-process on the fixture."""

import json

import jsonschema
import pytest
import torch

from .helpers import RECORD, fixture_model, program

pytestmark = pytest.mark.task(5)
__all__ = ["fixture_model"]


@pytest.fixture(scope="module")
def backend(fixture_model):
    model, tokenizer = fixture_model
    return program.LocalBackend(model, tokenizer)


def multi_turn_qa_program():
    """The README's example, written as SGLang's docs write it (only the backend line differs)."""
    from lab04_sglang.tests.helpers import program as sgl

    @sgl.function
    def multi_turn_qa(s, question_1, question_2):
        s += sgl.system("You answer in one short sentence.")
        s += sgl.user(question_1)
        s += sgl.assistant(sgl.gen("answer_1", max_tokens=48))
        s += sgl.user(question_2)
        s += sgl.assistant(sgl.gen("answer_2", max_tokens=48))

    return multi_turn_qa


@pytest.mark.points(3.5)
def test_multi_turn_qa_equals_the_chat_template(backend, fixture_model):
    """The program's text is the chat template's rendering, and each answer is HF greedy generate's on it."""
    model, tokenizer = fixture_model
    questions = {"question_1": "What is the capital of Japan?", "question_2": "Give me a user record as JSON."}
    state = multi_turn_qa_program().run(**questions, temperature=0, backend=backend)
    messages = state.messages()
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert tokenizer.bos_token + state.text() == rendered
    for turn, name in ((2, "answer_1"), (4, "answer_2")):
        prompt = tokenizer.apply_chat_template(messages[:turn], tokenize=False, add_generation_prompt=True)
        ids = tokenizer(prompt, add_special_tokens=False).input_ids
        inputs = torch.tensor([ids])
        out = model.generate(inputs, attention_mask=torch.ones_like(inputs), do_sample=False, max_new_tokens=48,
                             pad_token_id=tokenizer.pad_token_id)
        assert state[name] == tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)
        assert messages[turn]["content"] == state[name]
        meta = state.get_meta_info(name)  # SGLang's counts: the whole prompt sent, every new token (eos included)
        assert (meta["prompt_tokens"], meta["completion_tokens"]) == (len(ids), out.shape[1] - len(ids)), name
    assert state.get_meta_info("answer_2")["cached_tokens"] > 0, "the second turn should reuse the first's KV"


@pytest.mark.points(2.5)
def test_gen_with_json_schema_and_regex(backend):
    """gen(json_schema=) output validates (jsonschema); gen(regex=) fully matches; stop cuts the text."""

    @program.function
    def record(s):
        s += program.user("Give me a user record as JSON.")
        s += program.assistant(program.gen("record", json_schema=json.dumps(RECORD), max_tokens=60))
        s += "Code: " + program.gen("code", regex=r"[A-Z]{2}-\d{3}", max_tokens=10)
        s += " Then: " + program.gen("free", max_tokens=20, stop=[" ", "."])

    for seed in (0, 1):
        state = record.run(temperature=1.0, seed=seed, backend=backend)
        jsonschema.validate(json.loads(state["record"]), RECORD)
        assert len(state["code"]) == 6 and state["code"][2] == "-" and state["code"][3:].isdigit()
        assert " " not in state["free"] and "." not in state["free"]


@pytest.mark.points(4)
def test_select_by_summed_and_normalised_logprob(backend, fixture_model):
    """select picks the argmax of summed or of length-normalised log-probabilities, computed independently with HF."""
    model, tokenizer = fixture_model
    choices = ["Lima", "Seoul", "the city of Lima in Peru", "x"]  # on the fixture, the two methods disagree

    def scores(prefix: str) -> list[tuple[float, float]]:
        prefix_ids = tokenizer(prefix).input_ids
        out = []
        for choice in choices:
            ids = tokenizer(choice, add_special_tokens=False).input_ids
            with torch.no_grad():
                logits = model(torch.tensor([prefix_ids + ids])).logits[0]
            logprobs = torch.log_softmax(logits[len(prefix_ids) - 1:-1], dim=-1)
            total = float(logprobs.gather(1, torch.tensor(ids)[:, None]).sum())
            out.append((total, total / len(ids)))
        return out

    @program.function
    def pick(s, method):
        s += "The capital of Japan is "
        s += program.select("city", choices=choices, choices_method=method)

    expected = scores("The capital of Japan is ")
    by_sum = max(range(len(choices)), key=lambda i: expected[i][0])
    by_mean = max(range(len(choices)), key=lambda i: expected[i][1])
    if by_sum == by_mean:
        pytest.skip("on this model the two methods pick the same choice (the trained fixture tells them apart)")
    for method, column in ((program.summed_logprob, 0), (program.token_length_normalized, 1)):
        state = pick.run(method=method, backend=backend)
        best = max(range(len(choices)), key=lambda i: expected[i][column])
        assert state["city"] == choices[best] and state.text().endswith(choices[best])
        got = state.get_meta_info("city")
        assert got["summed_logprobs"] == pytest.approx([e[0] for e in expected], abs=1e-3)
        assert got["normalized_prompt_logprobs"] == pytest.approx([e[1] for e in expected], abs=1e-3)

    @program.function
    def tie(s, choices, method):
        s += "The capital of Japan is "
        s += program.select("city", choices=choices, choices_method=method)

    def flat(module, args, output):  # every token equally likely: one-token choices tie under both methods
        output.logits = torch.zeros_like(output.logits)
        return output

    hook = model.register_forward_hook(flat)
    try:
        for method in program.CHOICES_METHODS:
            for pair in (["a", "x"], ["x", "a"]):
                assert tie.run(choices=pair, method=method, backend=backend)["city"] == pair[0], (
                    method, pair, "on a tie the earlier choice wins")
    finally:
        hook.remove()


@pytest.mark.points(2)
def test_fork_branches_share_the_prefix(backend, fixture_model):
    """fork(n) gives independent states with the same prefix; their requests reuse its KV from the radix cache.
    A fork made inside an open role is inside it too (SGLang copies the open role): each branch closes the turn,
    and its text is the chat template's rendering of its messages."""

    @program.function
    def branches(s):
        s += program.user("Give me a user record as JSON.")
        s += program.assistant(program.gen("first", max_tokens=40))
        forks = s.fork(3)
        for i, f in enumerate(forks):
            f += program.user(f"Question {i}: what is the capital of Japan?")
            f += program.assistant(program.gen("answer", max_tokens=12))
        s.forks = forks

    state = branches.run(temperature=0, backend=backend)
    texts = [f.text() for f in state.forks]
    assert len(set(texts)) == 3, "the 3 forks must answer 3 different questions"
    assert all(t.startswith(state.text()) for t in texts), "every fork's text starts with the shared prefix"
    assert all(f["first"] == state["first"] for f in state.forks) and "answer" not in state.variables
    assert all(len(f.messages()) == 4 for f in state.forks), (
        "every fork holds the shared 2 messages plus its own question and answer"
    )
    assert len(state.messages()) == 2, "the forks must not add messages to the parent state"
    assert "answer" not in state.meta_info, "a fork's meta_info is its own, not the parent's"
    with pytest.raises(ValueError, match="size"):
        state.fork(0)
    prefix_tokens = len(backend.encode(state.text()))
    for f in state.forks:
        assert f.get_meta_info("answer")["cached_tokens"] >= prefix_tokens - 2

    @program.function
    def inside_a_role(s):  # SGLang's StreamExecutor.fork copies cur_role (sglang/lang/interpreter.py); no gen
        s += program.user("Give me a user record as JSON.")
        with s.assistant():
            s += "Sure:"
            s.forks = s.fork(2)
            for i, f in enumerate(s.forks):
                f += f" record {i}"
                f.role_end("assistant")

    tokenizer = fixture_model[1]
    state = inside_a_role.run(backend=backend)
    for i, f in enumerate(state.forks):
        assert f.messages() == [{"role": "user", "content": "Give me a user record as JSON."},
                                {"role": "assistant", "content": f"Sure: record {i}"}]
        assert tokenizer.bos_token + f.text() == tokenizer.apply_chat_template(f.messages(), tokenize=False)
    assert state.messages()[1] == {"role": "assistant", "content": "Sure:"}, "the parent closes its own turn"


@pytest.mark.points(2)
def test_bad_programs_fail_before_generation():
    """Both regex and json_schema, no choices, an impossible regex, an invalid schema: ValueErrors naming them."""
    with pytest.raises(ValueError, match=r"regex or json_schema"):
        program.gen("x", regex="a", json_schema={"type": "integer"})
    with pytest.raises(ValueError, match="choices"):
        program.select("x", choices=[])
    with pytest.raises(ValueError, match="never match"):
        program.gen("x", regex=r"[^\x00-\U0010FFFF]")
    with pytest.raises(ValueError, match="JSON Schema"):
        program.gen("x", json_schema={"type": "nope"})
    with pytest.raises(ValueError, match="max_tokens"):
        program.gen("x", max_tokens=0)


@pytest.mark.points(1)
def test_gen_temperature_zero_stop_order_and_roles_that_nest(backend, fixture_model):
    """A gen's own temperature=0 is greedy even in a sampled run (0 is a value, not 'unset'); its text is cut
    before the earliest stop string found, whatever the list's order (as SGLang stops while generating);
    a role opened inside another is a ValueError (roles do not nest)."""
    model, tokenizer = fixture_model
    question = "What is the capital of Japan?"
    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                        tokenize=True, return_dict=False)
    inputs = torch.tensor([ids])
    out = model.generate(inputs, attention_mask=torch.ones_like(inputs), do_sample=False, max_new_tokens=12,
                         pad_token_id=tokenizer.pad_token_id)
    greedy = tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)
    stops = [".", " "]
    assert all(stop in greedy for stop in stops), greedy
    earliest = greedy[:min(greedy.find(stop) for stop in stops)]

    @program.function
    def ask(s, stop):
        s += program.user(question)
        s += program.assistant(program.gen("answer", max_tokens=12, temperature=0, stop=stop))

    for seed in (0, 1, 2):
        assert ask.run(stop=None, temperature=1.0, seed=seed, backend=backend)["answer"] == greedy
    state = ask.run(stop=stops, temperature=1.0, seed=0, backend=backend)
    assert state["answer"] == earliest
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": question},
                                              {"role": "assistant", "content": earliest}], tokenize=False)
    assert tokenizer.bos_token + state.text() == rendered, (
        "the program's text holds the answer cut at the stop string, nothing generated past it")

    inside = []

    @program.function
    def nested(s):
        with s.user():
            s += "Hi"
            with s.assistant():
                inside.append(s.text())

    with pytest.raises(ValueError, match="assistant") as error:  # refused where the inner role opens, naming it
        nested.run(backend=backend)
    assert inside == [] and "user" in str(error.value), "the message names both roles"
    state = program.ProgramState(backend, {"max_new_tokens": 4, "temperature": 0.0, "seed": None})
    with pytest.raises(ValueError):  # no role is open
        state.role_end("user")
    state.role_begin("user")
    with pytest.raises(ValueError):  # not the open role
        state.role_end("assistant")

    @program.function
    def ask_default(s):
        s += program.user(question)
        s += program.assistant(program.gen("answer"))  # no max_tokens, no temperature: the run's defaults

    state = ask_default.run(max_new_tokens=4, temperature=0, backend=backend)
    assert state["answer"] == tokenizer.decode(out[0, len(ids):len(ids) + 4], skip_special_tokens=True)
    assert state.get_meta_info("answer")["completion_tokens"] == 4, (
        "run(max_new_tokens=4) bounds a gen without max_tokens")

    @program.function
    def wander(s):
        s += program.user(question)
        s += program.assistant(program.gen("answer", max_tokens=8, temperature=5.0))

    first, again = (wander.run(seed=7, backend=backend)["answer"] for _ in range(2))
    assert first == again, "the run's seed makes a sampled gen reproducible"
