"""What the offline receptionist recognises, per language: regular expressions over folded text
(lower case, no accents, й→и, ё→е), so "Amanhã" and "amanha" read the same.

Patterns are data: adding a phrasing is adding a line here, with a test in tests/unit.
"""

from __future__ import annotations

from dataclasses import dataclass

# Intents, in priority order when several match (the dialogue reads them as a set).
INTENTS = (
    "handoff",
    "cancel",
    "reschedule",
    "postpone",
    "list",
    "confirm_attendance",
    "book",
    "book_weak",
    "ask_prices",
    "ask_insurances",
    "ask_hospitals",
    "ask_doctors",
    "ask_hours",
    "ask_address",
    "ask_services",
    "ask_accepts",
    "earlier",
    "more",
    "reject",
    "yes",
    "no",
    "skip",
    "any",
    "thanks",
    "bye",
    "greeting",
    "urgent",
)


@dataclass(frozen=True)
class Lexicon:
    intents: dict[str, tuple[str, ...]]
    weekdays: dict[str, str]
    """Weekday id (mon…sun) → pattern."""
    negation_before: str
    """Matches right before a weekday or period that is excluded ("não", "не", "not")."""
    next_before: str
    """Matches right before a weekday meaning "the coming one" ("próxima", "следующ…")."""
    periods: dict[str, str]
    period_blockers: str
    """Greetings that contain a period word ("boa tarde"), removed before reading periods."""
    relative_days: tuple[tuple[str, int], ...]
    this_week: str
    next_week: str
    weekend: str
    next_month: str
    in_days: str
    """``(\\d+)`` days from today."""
    months: tuple[str, ...]
    day_of_month: str
    """``(\\d{1,2})`` alone as a day: "dia 25"."""
    after: str
    before: str
    at: str
    hour_suffix: str
    noon: str
    ordinals: dict[int, str]
    """1, 2, 3 and -1 (the last one)."""
    ordinal_prefix: str
    """Required before an ordinal word when it could also be a weekday (pt-BR "a segunda")."""
    name_prefixes: tuple[str, ...]
    private: str
    question: str
    """A message phrased as a question even without "?" ("do you…", "есть ли…", "vocês têm…")."""
    after_lunch: str
    """"After lunch": from 13:00 on (``nlu.LUNCH_END``), not the whole afternoon period."""
    aliases: tuple[tuple[str, str], ...] = ()
    """(pattern, word): everyday words rewritten to the clinic's vocabulary before services are
    looked up ("детей" → "ребенок", "kids" → "child")."""


_PT = Lexicon(
    intents={
        "handoff": (
            r"\batendente\b",
            r"\bhumano\b",
            r"\bpessoa (de verdade|real)\b",
            r"\bfalar com (alguem|uma pessoa|a recepcao|a secretaria|a clinica)\b",
            r"\brecepcionista\b",
            r"\bsecretaria\b",
        ),
        "cancel": (
            r"\bcancel\w*",
            r"\bdesmarc\w*",
            r"\bnao vou (poder |conseguir )?(ir|comparecer)\b",
        ),
        "reschedule": (
            r"\bremarc\w*",
            r"\breagend\w*",
            r"\b(mudar|trocar|alterar) (a|o|minha|meu)? ?(data|horario|dia|consulta|agendamento)\b",
            r"\badiar\b",
            r"\bantecipar\b",
        ),
        "postpone": (
            r"\badiar\b",
            r"\bpostergar\b",
            r"\b(mais|pra) (pra )?frente\b",
            r"\bempurrar\b",
        ),
        "list": (
            r"\bminhas consultas\b",
            r"\bmeus (agendamentos|horarios)\b",
            r"\bquando e (a )?minha consulta\b",
            r"\b(que horas|que dia|qual dia|qual (o )?horario) (e|eh|ficou|sera)"
            r" (a )?minha consulta\b",
            r"\btenho (alguma )?consulta marcada\b",
        ),
        "confirm_attendance": (
            r"\bconfirm(o|ar) (a |minha )?(presenca|consulta)\b",
            r"\bvou comparecer\b",
            r"\bestarei (la|ai)\b",
            r"\bpode contar comigo\b",
        ),
        "book": (
            r"\bmarcar\b",
            r"\bagend\w*",
            r"\bquero (ir|passar|ver)\b",
            r"\b(tem|ha) (vaga|horario)",
            r"\bmarcacao\b",
            r"\bpreciso de (um|uma)\b",
        ),
        "book_weak": (r"\bconsulta\b", r"\bexame\b", r"\bhorario\b"),
        "ask_prices": (
            r"\bquanto (que )?(custa|e|fica|sai|vai (custar|ficar|sair|dar))\b",
            r"\bquanto (eu )?(pago|vou pagar|vai custar)\b",
            r"\bcoparticipacao\b",
            r"\bprec(o|os)\b",
            r"\bvalor(es)?\b",
            r"\bcusta\b",
        ),
        "ask_insurances": (
            r"\bconvenio",
            r"\bplano(s)? de saude\b",
            r"\batende(m)? (pelo|por|o) (plano|convenio)",
        ),
        "ask_hospitals": (r"\bhospita(l|is)\b",),
        "ask_doctors": (
            r"\bquais (sao )?(os )?medicos\b",
            r"\bquem (sao os medicos|atende)\b",
            r"\b(os|seus|quais) doutores\b",
            r"\bmedicos\b",
        ),
        "ask_hours": (
            r"\bhorario de (funcionamento|atendimento)\b",
            r"\bhorarios? (de voces|da clinica|do consultorio)\b",
            r"\bque horas (voces )?(atende|atendem|funciona|funcionam)\b",
            r"\b(em )?(que|quais) dias\b",
            r"\bque horas (voces )?(abre|abrem|fecha|fecham)\b",
            r"\b(abre|abrem|fecha|fecham|funciona|funcionam) (que horas|ate|aos|no|sabado)",
            r"\bexpediente\b",
            r"\b(abre|abrem|funciona|funcionam|atende|atendem|trabalha|trabalham|abert[ao]s?)"
            r"( \w+){0,3} (sabados?|domingos?|feriados?|fi(m|nal) de semana)\b",
            r"\bate que horas\b",
            r"\ba partir de que horas\b",
        ),
        "ask_address": (
            r"\bendereco\b",
            r"\bonde (fica|ficam|voces ficam|e a clinica)\b",
            r"\blocalizacao\b",
            r"\btelefone da clinica\b",
            r"\b(qual|quais) (e )?(o )?(seu |numero de )?(telefone|whatsapp|contato|e-?mail)\b",
            r"\bcomo (eu )?(chego|chegar|falo com voces|entro em contato)\b",
        ),
        "ask_services": (
            r"\bquais (sao )?(os )?(servicos|especialidades|exames)\b",
            r"\bo que voces (fazem|atendem)\b",
        ),
        # Resolved once entities are known: a plan → insurances, a service → services.
        "ask_accepts": (r"\baceita(m)?\b", r"\batende(m)?\b", r"\btrata(m)?\b"),
        "earlier": (
            r"\bmais cedo\b",
            r"\bantes (disso|desse|dessa|desses|dessas)\b",
            r"\bmais (proximo|perto|rapido)\b",
            r"\b(nada|algo|alguma coisa) antes\b",
        ),
        "more": (
            r"\boutr[ao]s?\b(?! (medic|doutor|dr|especial|servic|exame|clinica|plano|convenio))",
            r"\bmais (opcoes|horarios|datas)\b",
            r"\btem mais\b",
            r"\bmais tarde\b",
            r"\bproxim[ao]s (horarios|opcoes|datas)\b",
        ),
        "reject": (
            r"\bnenhu(m|ma)\b",
            r"\bnao (serve|servem|da|posso|consigo|me serve|funciona)\b",
            r"\bmais cedo\b",
        ),
        "yes": (
            r"^(s|sim|ss|isso|ok|okay|certo|claro|perfeito|pode|beleza|fechado|exato|confirmo"
            r"|confirma|confirmado|correto|otimo|combinado)\b",
            r"\bsim\b",
            r"\bpode (ser|marcar|confirmar|agendar|cancelar|remarcar|mudar|trocar)\b",
            r"\bisso mesmo\b",
            r"\bcom certeza\b",
            r"\bpor favor,? (marca|confirma|agenda|cancela)\b",
            r"\b(esta|ta) (certo|otimo|bom)\b",
        ),
        "no": (
            r"^(n|nao|negativo|errado)\b",
            r"\bnao (quero|obrigad|precisa|esta certo|e isso)\b",
            r"\bmelhor nao\b",
            r"^nao\b",
        ),
        "skip": (
            r"\bnao tenho( email| e-mail)?\b",
            r"\b(pular|pula|sem email|sem e-mail|prefiro nao)\b",
        ),
        "any": (r"\bqualquer\b", r"\btanto faz\b", r"\bo (mais cedo|primeiro) possivel\b"),
        "thanks": (r"\bobrigad\w*", r"\bvaleu\b", r"\bagradec\w*"),
        "bye": (r"\btchau\b", r"\bate (logo|mais|breve)\b", r"\bso isso\b", r"\bera so isso\b"),
        "urgent": (r"(?<!nao e )(?<!nao eh )\burgen(te|cia|tissim[oa])\b", r"\burgentemente\b"),
        "greeting": (
            r"^(oi|ola|oie|alo|e ai)\b",
            r"\bbo(m|a) (dia|tarde|noite)\b",
            r"\btudo bem\b",
        ),
    },
    weekdays={
        "mon": r"\bsegunda(-feira| feira)?\b",
        "tue": r"\bterca(-feira| feira)?\b",
        "wed": r"\bquarta(-feira| feira)?\b",
        "thu": r"\bquinta(-feira| feira)?\b",
        "fri": r"\bsexta(-feira| feira)?\b",
        "sat": r"\bsabado\b",
        "sun": r"\bdomingo\b",
    },
    negation_before=(
        r"(\bnao|\bmenos|\bexceto|\bsem ser|\bfora)( pode ser| posso| consigo| da| quero)?"
        r"( na| no| de| a| em| dia| nas| nos| pela| pelo| a tarde| a noite)*\s*$"
    ),
    next_before=r"\b(proxim[ao]|nest[ae]|ess[ae])\s*$",
    periods={
        "morning": r"\b(manha|cedo)\b|\bantes do almoco\b",
        "afternoon": r"\btarde\b",
        "evening": r"\bnoite\b",
    },
    period_blockers=r"\bbo(m|a) (dia|tarde|noite)\b|\bmais tarde\b|\bmais cedo\b",
    relative_days=(
        (r"\bdepois de amanha\b", 2),
        (r"\bamanha\b", 1),
        (r"\bhoje\b", 0),
    ),
    this_week=r"\b(esta|essa|nesta|nessa) semana\b",
    next_week=r"\b(proxima semana|semana que vem|semana seguinte)\b",
    weekend=r"\bfi(m|nal) de semana\b",
    next_month=r"\b(proximo mes|mes que vem)\b",
    in_days=r"\bdaqui a (\d{1,2}) dias\b",
    months=(
        "janeiro",
        "fevereiro",
        "marco",
        "abril",
        "maio",
        "junho",
        "julho",
        "agosto",
        "setembro",
        "outubro",
        "novembro",
        "dezembro",
    ),
    day_of_month=r"\bdia (\d{1,2})\b",
    after=r"(depois d[aoe]s?|apos (as|o)?|a partir d[aoe]s?|mais tarde que|nao antes d[aoe]s?)",
    before=r"(antes d[aoe]s?|ate (as|o)?|no maximo (as)?|nao depois d[aoe]s?)",
    at=r"(as|a|pelas|por volta d[aoe]s)",
    hour_suffix=r"(h|hs|horas?|hrs)",
    noon=r"\bmeio[- ]dia\b",
    ordinals={
        1: r"\bprimeir[ao]\b",
        2: r"\bsegund[ao]\b(?![- ]feira)",
        3: r"\bterceir[ao]\b",
        -1: r"\bultim[ao]\b",
    },
    ordinal_prefix=r"(\b(a|o|opcao|horario|fico com a|fico com o|quero a|quero o)\s+$)|^\s*$",
    name_prefixes=(
        r"meu nome (e|eh)",
        r"me chamo",
        r"sou (o|a)",
        r"aqui (e|eh) (o|a)",
        r"eu sou (o|a)?",
        r"nome:",
        r"nome",
        r"sou",
        r"aqui (e|eh)",
    ),
    private=r"\bparticular\b|\bsem (convenio|plano)\b",
    question=(
        r"^(e )?(voces|voce|vcs|tem|ha|existe|posso"
        r"|pode(?! (ser|marcar|confirmar|agendar|cancelar|remarcar|mudar|trocar)\b)"
        r"|da pra|qual|quais|onde|como|quando"
        r"|quem|por que|porque|e possivel|aceitam|atendem|fazem|trabalham)\b"
    ),
    after_lunch=r"\b(depois|apos) (do|o) almoco\b",
    aliases=((r"\b(criancas|infantil|infantis)\b", "crianca"), (r"\bbebes\b", "bebe")),
)

_RU = Lexicon(
    intents={
        "handoff": (
            r"\bоператор\w*",
            r"\bадминистратор\w*",
            r"\bживо(и|го) (человек|оператор)\w*",
            r"\bс человеком\b",
            r"\bсоедини\w*",
            r"\bменеджер\w*",
        ),
        "cancel": (r"\bотмен\w*", r"\bне смогу (прийти|придти)\b"),
        "reschedule": (
            r"\bперенес\w*",
            r"\bперенос\w*",
            r"\bперезапис\w*",
            r"\b(поменять|изменить|сменить) (время|дату|запись)\b",
        ),
        "postpone": (r"\bотложить\b", r"\bпопозже\b", r"\bна позже\b", r"\bпереносим на позже\b"),
        "list": (
            r"\bмои записи\b",
            r"\bкогда (у меня )?(при[её]м|запись)\b",
            r"\bна когда я записан\w*",
            r"\bво сколько (у меня )?(при[её]м|запись)\b",
            r"\bво сколько я записан\w*",
            r"\bесть ли у меня запись\b",
        ),
        "confirm_attendance": (
            r"\bподтвер\w* (запись|при[её]м|визит)\b",
            r"\bя приду\b",
            r"\bобязательно (буду|приду)\b",
        ),
        "book": (
            r"\bзапис\w*",
            r"\bзапиш\w*",
            r"\bхочу (к|на)\b",
            r"\bнужен\b",
            r"\bнужна\b",
            r"\bможно (к|на)\b",
        ),
        "book_weak": (r"\bпри[её]м\w*", r"\bконсультац\w*", r"\bврач\w*"),
        "ask_prices": (
            r"\bсколько (\w+ ){0,3}(стоит|стоить|стоят|обойдет\w*)\b",
            r"\bпочем\b",
            r"\bдоплат\w*",
            r"\bсколько (платить|заплачу)\b",
            r"\bцен(а|ы|у)\b",
            r"\bстоимост\w*",
            r"\bпрайс\w*",
        ),
        "ask_insurances": (r"\bстрахов\w*", r"\bдмс\b", r"\bполис\w*"),
        "ask_hospitals": (r"\bбольниц\w*", r"\bгоспитал\w*", r"\bстационар\w*"),
        "ask_doctors": (
            r"\bкакие (у вас )?врачи\b",
            r"\bврачи\b",
            # "доктора" is also "(at) the doctor's": "у доктора Лимы" asks for nobody's list.
            r"\b(какие|ваши|все|кто) (у вас )?доктора\b",
            r"\bкто ведет\b",
        ),
        "ask_hours": (
            r"\bчасы работы\b",
            r"\bкогда (вы )?работаете\b",
            r"\bво сколько (вы )?(открываетесь|закрываетесь|работаете)\b",
            r"\b(график|режим) работы\b",
            r"\bдо скольки\b",
            r"\b(работаете|работает|открыт\w*|принимаете)( \w+){0,3} (суббот|воскресень|выходн"
            r"|праздник)\w*",
            r"\bв какие дни\b",
            r"\bс (какого|скольки) часа\b",
        ),
        "ask_address": (
            r"\bадрес\w*",
            r"\bгде (вы )?(находитесь|наход\w*)\b",
            r"\bкак (до вас )?добраться\b",
            r"\b(какои|ваш) (у вас )?(номер )?(телефон\w*|номер|email|имеил|почта)\b",
            r"\bномер телефона\b",
            r"\bкак (с вами )?связаться\b",
        ),
        "ask_services": (r"\bкакие (у вас )?(услуги|специалисты)\b", r"\bчто вы лечите\b"),
        "ask_accepts": (
            r"\bпринимаете\b",
            r"\bработаете с\b",
            r"\bлечите\b",
            r"\bведете\b",
        ),
        "earlier": (
            r"\bпораньше\b",
            r"\bраньше\b",
            r"\bпобыстрее\b",
            r"\bближе\b",
        ),
        "more": (
            r"\bдруг(ие|ое|ои|ую|ая|ого|ом)\b(?! (врач|доктор|специалист|услуг|клиник|страхов))",
            r"\bещ[её] (вариант\w*|время|что-нибудь|что-то)\b",
            r"\bесть ещ[её]\b",
            r"\bпозже\b",
        ),
        "reject": (
            r"\bне подход\w*",
            r"\bни один\b",
            r"\bничего не подходит\b",
            r"\bне могу\b",
            r"\bне получится\b",
            r"\bпораньше\b",
        ),
        "yes": (
            r"^(да|ага|угу|ок|океи|ok|okay|хорошо|давайте|давай|верно|конечно|подтверждаю|согласен"
            r"|согласна|отлично|точно|записывайте|подходит|годится|все верно)\b",
            r"\bда\b",
            r"\bвсе верно\b",
            r"\bподтверждаю\b",
        ),
        "no": (r"^(нет|неа|не надо|неверно)\b", r"\bнет\b"),
        "skip": (r"\bнет (почты|email|имеила)\b", r"\bпропуст\w*", r"\bбез (почты|email)\b"),
        "any": (r"\bлюб(ои|ое|ая|ую|ые)\b", r"\bвсе равно\b", r"\bкак можно раньше\b"),
        "thanks": (r"\bспасиб\w*", r"\bблагодар\w*"),
        "bye": (r"\bдо свидания\b", r"\bпока\b", r"\bвсего доброго\b"),
        "urgent": (r"(?<!\bне )\bсрочн\w*", r"\bкак можно (скорее|быстрее)\b"),
        "greeting": (
            r"^(здравствуите|здравствуи|привет|алло|добрыи день|доброе утро|добрыи вечер)\b",
            r"\bздравствуите\b",
            r"\bдобр(ыи|ое) (день|утро|вечер)\b",
        ),
    },
    weekdays={
        "mon": r"\bпонедельник\w*",
        "tue": r"\bвторник\w*",
        "wed": r"\bсред(а|у|ы|ам)\b",
        "thu": r"\bчетверг\w*",
        "fri": r"\bпятниц\w*",
        "sat": r"\bсуббот\w*",
        "sun": r"\bвоскресень\w*",
    },
    negation_before=r"(\bне|\bкроме|\bтолько не|\bлишь бы не)( в| во| по| на)?\s*$",
    next_before=r"\b(следующ\w*|ближаиш\w*|эт(от|у|ом))( в| во)?\s*$",
    periods={
        "morning": r"\bутр\w*|\bс утра\b|\bдо обеда\b",
        "afternoon": r"\bдн[её]м\b|\bдневн\w*",
        "evening": r"\bвечер\w*",
    },
    period_blockers=r"\bдобр(ыи|ое) (день|утро|вечер)\b|\bдоброго (дня|утра|вечера)\b",
    relative_days=((r"\bпослезавтра\b", 2), (r"\bзавтра\b", 1), (r"\bсегодня\b", 0)),
    this_week=r"\bна этои неделе\b",
    next_week=r"\bна (следующеи|будущеи) неделе\b|\bследующ\w* недел\w*",
    weekend=r"\bв выходн\w*|\bвыходные\b",
    next_month=r"\bв следующем месяце\b",
    in_days=r"\bчерез (\d{1,2}) (дня|днеи|день)\b",
    months=(
        "январ",
        "феврал",
        "март",
        "апрел",
        "ма[яи]",
        "июн",
        "июл",
        "август",
        "сентябр",
        "октябр",
        "ноябр",
        "декабр",
    ),
    day_of_month=r"\b(\d{1,2})(-?го)? числа\b",
    after=r"(после|не раньше|позже|с)",
    before=r"(до|не позже|раньше)",
    at=r"(в|к|на)",
    hour_suffix=r"(ч|час\w*)",
    noon=r"\bполдень\b|\bв полдень\b",
    ordinals={
        1: r"\bперв(ыи|ая|ое|ого|ую|ои|ым)\b",
        2: r"\bвтор(ои|ая|ое|ого|ую|ым)\b",
        3: r"\bтрет(ии|ья|ье|ьего|ью|ьеи|ьим)\b",
        -1: r"\bпоследн\w*",
    },
    ordinal_prefix=r"",
    name_prefixes=(r"меня зовут", r"мо[её] имя", r"это", r"я", r"имя:", r"фио:?"),
    private=r"\bплатн\w*|\bза свои\b|\bбез (страховки|полиса)\b|\bчастн\w*",
    question=(
        r"^(а |и )?(есть ли|у вас (есть|можно)|можно ли|можно|как|где|когда|кто|что|почему|зачем"
        r"|какои|какая|какое|какие|сколько|вы)\b|\b\w+ ли\b"
    ),
    after_lunch=r"\bпосле (обеда|ланча)\b",
    aliases=(
        (r"\bдет(и|еи|ям|ьми|ях|ск\w*)\b", "ребенок"),
        (r"\b(ребенк\w*|младен\w*|малыш\w*)", "ребенок"),
    ),
)

_EN = Lexicon(
    intents={
        "handoff": (
            r"\bhuman\b",
            r"\breal person\b",
            r"\b(speak|talk) (to|with) (someone|a person|staff|the clinic|reception)",
            r"\breceptionist\b",
            r"\boperator\b",
            r"\bagent\b",
        ),
        "cancel": (r"\bcancel\w*", r"\bcall off\b", r"\bcan'?t make it\b"),
        "reschedule": (
            r"\breschedul\w*",
            r"\bmove (my|the) appointment\b",
            r"\bchange (my|the) (appointment|time|date|booking)\b",
            r"\bpostpone\b",
        ),
        "postpone": (
            r"\bpostpone\b",
            r"\bput (it |this )?off\b",
            r"\bpush (it |this )?back\b",
            r"\blater date\b",
        ),
        "list": (
            r"\bmy appointments\b",
            r"\bwhen is my appointment\b",
            r"\bwhat (time|day) is my appointment\b",
            r"\bdo i have (an|any) appointments?\b",
        ),
        "confirm_attendance": (
            r"\bconfirm (my|the) (appointment|visit|attendance)\b",
            r"\bi will (be there|attend|come)\b",
            r"\bi'?ll be there\b",
            r"\bsee you (then|there)\b",
        ),
        "book": (
            r"\bbook\w*",
            r"\bschedule\b",
            r"\bsee (a|the) (doctor|specialist)\b",
            r"\bi need (a|an)\b",
            r"\bany (slots?|openings?|availability)\b",
            r"\bi'?d like (a|an|to see)\b",
            r"\bi want (a|an|to see)\b",
        ),
        "book_weak": (r"\bappointment\b", r"\bconsultation\b", r"\bvisit\b"),
        "ask_prices": (
            r"\bhow much\b",
            r"\bco-?pay(ment)?\b",
            r"\bprices?\b",
            r"\bcosts?\b",
            r"\bfees?\b",
        ),
        "ask_insurances": (r"\binsurances?\b", r"\bhealth plans?\b", r"\bcovered\b"),
        "ask_hospitals": (r"\bhospitals?\b",),
        "ask_doctors": (r"\bwhich doctors\b", r"\bwho are the doctors\b", r"\bdoctors\b"),
        "ask_hours": (
            r"\bopening hours\b",
            r"\b(what|which) days\b",
            r"\bbusiness hours\b",
            r"\bwhen (are|do) you (open|close)\b",
            r"\bwhat time do you (open|close)\b",
            r"\byour hours\b",
            r"\b(are|is) (you|the clinic) open\b",
            r"\b(open|work|working)( \w+){0,2} (saturdays?|sundays?|weekends?|holidays?)\b",
        ),
        "ask_address": (
            r"\baddress\b",
            r"\bwhere (are you|is the clinic)\b",
            r"\blocat(ed|ion)\b",
            r"\b(your|the clinic'?s?) (phone|phone number|number|e-?mail)\b",
            r"\bhow (can|do) i (reach|contact|call) you\b",
        ),
        "ask_services": (r"\bwhat services\b", r"\bwhich (services|specialties)\b"),
        "ask_accepts": (r"\bdo you (accept|take|see|treat)\b", r"\bdo you work with\b"),
        "earlier": (
            r"\bearlier\b",
            r"\bsooner\b",
            r"\banything before\b",
        ),
        "more": (
            r"\bany others?\b",
            r"\bothers\b",
            r"\b(other|another|different|more) (times?|days?|options?|slots?|dates?|ones?)\b",
            r"\bsomething else\b",
            r"\bshow me more\b",
            r"\blater\b",
        ),
        "reject": (
            r"\bnone\b",
            r"\bneither\b",
            r"\b(doesn'?t|don'?t|does not|do not|won'?t) work\b",
            r"\bearlier\b",
        ),
        "yes": (
            r"^(y|yes|yeah|yep|yup|sure|ok|okay|correct|right|perfect|great|confirm|confirmed"
            r"|absolutely|fine|go ahead|please do|sounds good|book it|that'?s right|alright)\b",
            r"\byes\b",
            r"\bplease (book|confirm|go ahead)\b",
            r"\b(go ahead|sounds good|book it|do it)\b",
        ),
        "no": (r"^(n|no|nope|nah|wrong)\b", r"\bno,? thanks?\b", r"\bnot (right|correct)\b"),
        "skip": (r"\bno (email|e-mail)\b", r"\bskip\b", r"\bi don'?t have (one|an? e-?mail)\b"),
        "any": (
            r"\bany ?(time|day|one)\b",
            r"\bwhatever\b",
            r"\bas soon as possible\b",
            r"\basap\b",
        ),
        "thanks": (r"\bthanks?\b", r"\bthank you\b", r"\bcheers\b"),
        "bye": (r"\bbye\b", r"\bgoodbye\b", r"\bsee you\b", r"\bthat'?s all\b"),
        "urgent": (r"(?<!not )\burgent(ly)?\b", r"\basap\b"),
        "greeting": (r"^(hi|hello|hey|hiya)\b", r"\bgood (morning|afternoon|evening)\b"),
    },
    weekdays={
        "mon": r"\bmondays?\b",
        "tue": r"\btuesdays?\b",
        "wed": r"\bwednesdays?\b",
        "thu": r"\bthursdays?\b",
        "fri": r"\bfridays?\b",
        "sat": r"\bsaturdays?\b",
        "sun": r"\bsundays?\b",
    },
    negation_before=(
        r"(\bnot|\bexcept|\bno|\bbut not|\bcan'?t do|\bcannot do|\bcan'?t|\bcannot|\bavoid)"
        r"( on| in| the| any)*\s*$"
    ),
    next_before=r"\b(next|this|coming)\s*$",
    periods={
        "morning": r"\bmornings?\b|\bbefore lunch\b",
        "afternoon": r"\bafternoons?\b",
        "evening": r"\bevenings?\b|\bnight\b",
    },
    period_blockers=r"\bgood (morning|afternoon|evening|night)\b",
    relative_days=(
        (r"\bday after tomorrow\b", 2),
        (r"\btomorrow\b", 1),
        (r"\btoday\b", 0),
    ),
    this_week=r"\bthis week\b",
    next_week=r"\bnext week\b",
    weekend=r"\bweekends?\b",
    next_month=r"\bnext month\b",
    in_days=r"\bin (\d{1,2}) days\b",
    months=(
        "jan(?:uary)?",
        "feb(?:ruary)?",
        "mar(?:ch)?",
        "apr(?:il)?",
        "may",
        "june?",
        "july?",
        "aug(?:ust)?",
        "sep(?:t|tember)?",
        "oct(?:ober)?",
        "nov(?:ember)?",
        "dec(?:ember)?",
    ),
    day_of_month=r"\bthe (\d{1,2})(st|nd|rd|th)\b",
    after=r"(after|from|not before|later than)",
    before=r"(before|by|until|till|no later than)",
    at=r"(at|around)",
    hour_suffix=r"(h|o'?clock)",
    noon=r"\bnoon\b|\bmidday\b",
    ordinals={
        1: r"\b(first|1st)\b",
        2: r"\b(second|2nd)\b",
        3: r"\b(third|3rd)\b",
        -1: r"\blast\b",
    },
    ordinal_prefix=r"",
    name_prefixes=(
        r"my name is",
        r"my name'?s",
        r"i'?m",
        r"i am",
        r"this is",
        r"name:",
        r"name",
        r"it'?s",
    ),
    private=r"\bprivate(ly)?\b|\bself-?pay\b|\bno insurance\b|\bwithout insurance\b",
    question=(
        r"^(and |so )?(do|does|is|are|can|could|may|will|would|what|what'?s|where|when|who|why"
        r"|how|which|have|has)\b"
    ),
    after_lunch=r"\bafter lunch(time)?\b",
    aliases=((r"\b(children|kids?|toddlers?|infants?)\b", "child"), (r"\bbabies\b", "baby")),
)

LEXICONS: dict[str, Lexicon] = {"pt-BR": _PT, "ru": _RU, "en": _EN}
