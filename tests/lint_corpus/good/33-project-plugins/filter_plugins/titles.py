def slugify_title(text):
    return "-".join(str(text).lower().split())


class FilterModule:
    def filters(self):
        return {"slugify_title": slugify_title}
